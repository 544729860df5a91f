"""The default on a corpus that holds every DeepScoresV2 class its engravers draw: 480 pages,
60 % generated, every generated piece with the marks the default's corpus lacks
(`dwd_jax.engrave.compose.EVERY_CLASS`: fingerings, tremolos, arpeggios, caesuras, pedalling,
segno and coda, ottavas, multi-measure rests, percussion and two-octave clefs, 128ths, grace
notes of every value, tuplets of every digit). 132 of the 136 classes then have at least 200
training objects each (`python benchmarks/corpus_counts.py data/every_class/manual/synthetic`);
the four that do not are DeepScoresV2's one-glyph grace notes, which neither engraver draws.

`python run.py --config=configs/every_class.py --workdir=workdir/every_class` trains it (its
corpus and dataset are kept apart from the default's). At the default's 7500 steps the model
does not yet tell the new look-alikes apart (tuplet and time-signature digits, flags to 128ths,
small heads of every value): on the default corpus's test split it scored 0.650 against the
then default model's 0.789 mAP@.5 (BENCHMARKS.md, "Every class"). Give it more steps
(`--config.train.steps`) on an accelerator.
"""

import ml_collections

from configs import default


def get_config() -> ml_collections.ConfigDict:
    c = default.get_config()
    c.engrave.num_pages = 480
    c.engrave.generated_share = 0.6
    c.engrave.every_class_share = 1.0
    c.data.data_dir = "data/every_class/tensorflow_datasets"
    c.data.manual_dir = "data/every_class/manual"
    return c
