"""Tiny config: a few steps of a tiny model on small crops, for tests and CI.

Imports the default and shrinks it; every override below says why it is small.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    c = default.get_config()
    c.lock()  # A misspelt field below, or in a --config.x override, is an error naming it.
    c.data.scale = 1.0  # Test pages are already small.
    c.data.crop_size = 64  # Two pad multiples: the smallest crop every stride divides.
    c.data.pad_multiple = 32  # The backbone's coarsest stride, the least the decoder needs.
    c.data.max_objects = 16  # Test pages carry under 10 objects.
    c.data.batch_size = 2  # Above 1, to exercise batching; divides 1 and 2 devices.
    c.data.worker_count = 0  # In-process loading: no worker start-up cost in tests.

    c.model.depth = 18  # The smallest ResNet.
    c.model.width = 0.125  # 8..64 backbone channels: a compile in seconds.
    c.model.decoder_channels = 64  # 8 decoder channels after `width`.
    c.model.norm_groups = 4  # Divides the 8-channel layers.

    c.loss.schedule = (("energy", 2), ("combined", 4))  # One stage switch within a few steps.

    c.train.steps = 6  # Enough for a checkpoint, a resume and a stage switch.
    # Adam overfits a few pages in tens of steps; TF1 RMSProp's accumulator starts at 1, so
    # its first hundreds of steps are tiny (configs/deepscores_v2.py keeps RMSProp).
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3  # Tiny models on a few pages move fast.
    c.train.lr_schedule = "constant"  # A few steps: a warm-up would leave them nothing.
    c.train.log_every = 1  # Every step, so tests see every loss.
    c.train.picture_every = 0  # No pictures in tests unless a test asks.
    c.train.checkpoint_every = 3  # Twice per run.
    c.train.keep_checkpoints = 2  # The last two.
    c.train.eval_every = 0  # Validation during training costs compiles; tests that want it ask.
    c.engrave.pages_per_piece = 1  # A page per piece: a few pages still fill three splits.
    c.engrave.engravers = ("verovio",)  # LilyPond takes ~18x verovio's time per page.
    c.engrave.generated_share = 0.0  # The corpus alone: test_compose engraves generated music.
    c.data.degrade.rate = 0.0  # Tests compare exact pages and crops; test_degrade turns it on.
    return c
