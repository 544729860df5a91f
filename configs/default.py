"""Default config: the embedded engraved corpus, sized for a 2-core CPU.

`python run.py` uses this. Every field has a comment; variants (`tiny.py`, `deepscores_v2.py`)
import it and override. Override any field on the command line, absl style:
`python run.py train --config=configs/default.py --config.train.steps=500`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0  # One seed for data order, crops, init and engraving.

    # --- Data (tfds builder `deep_scores`, read with tfds.data_source) -------------------------
    c.data = ml_collections.ConfigDict()
    c.data.name = "deep_scores/synthetic"  # TFDS name/config to train and evaluate on.
    c.data.data_dir = "data/tensorflow_datasets"  # TFDS data dir ("" = ~/tensorflow_datasets).
    # TFDS manual dir: the DeepScoresV2 download (ds2_dense.tar.gz or ds2_dense/), and
    # `run.py generate` engraves the embedded corpus into its `synthetic/` folder.
    c.data.manual_dir = "data/manual"
    c.data.train_split = "train"
    # Where choices are tuned and what training tracks; the test split is only reported.
    c.data.eval_split = "validation"
    c.data.test_split = "test"  # Read only to report (`python run.py` ends with it).
    c.data.scale = 0.5  # Pages are scaled by this before cropping (spec section 4).
    # Random square crops (spec section 4 uses 960; configs/deepscores_v2.py does). 320 keeps a
    # step near 0.3 s on 2 CPU cores, which the whole default run is sized for.
    c.data.crop_size = 320
    # Share of crops taken at the page's top-left corner (the spec's 0.3 with 960 crops); a
    # 320 crop there mostly holds the title margin, so little here.
    c.data.crop_top_left_prob = 0.05
    # Share of the other crops centred on an object of a class drawn uniformly from the page's
    # (small crops otherwise often hold only margin; rare classes are seen as often as common).
    c.data.crop_object_prob = 0.5
    # Margin augmentation (spec section 5, dwd_jax.data.margin): on a share `prob` of crops,
    # a white strip of the crop's top `height` rows holds one symbol per `cell_width` columns,
    # of a class drawn uniformly from a bank of `per_class` symbols per class cut from the
    # training pages (the spec's 130-px strip of 80-px cells, at the model's scale). 0 = off:
    # the object-centred crops above balance the classes, and beat it on validation (mAP@.5
    # 0.619 against 0.533 with margins on half the crops instead; BENCHMARKS.md).
    c.data.margin = ml_collections.ConfigDict(
        {"prob": 0.0, "height": 130, "cell_width": 80, "per_class": 16}
    )
    c.data.pad_multiple = 160  # White padding to a multiple of this (spec section 2).
    c.data.max_objects = 1024  # Boxes per crop are padded/truncated to this (static shapes).
    # Global batch size, split over all devices and processes. 1 here: on 2 CPU cores batch 2
    # costs 2-2.5x batch 1 (spec section 11), so it buys nothing; raise it on accelerators.
    c.data.batch_size = 1
    # Background grain workers decoding and cropping pages; 0 = in the training process. On
    # 2 CPU cores the workers only compete with the step (2.64 against 2.89 steps/s with 0;
    # BENCHMARKS.md); a page is degraded and cropped the same for any count.
    c.data.worker_count = 0
    # Degradations of scans and photographs (dwd_jax.data.degrade), applied to a training page after
    # data.scale and before cropping, in dwd_jax.data.degrade.FAMILIES' order. Parameters are in
    # pixels and grey levels of the scaled page; (a, b) are ranges a value is drawn from.
    c.data.degrade = ml_collections.ConfigDict()
    # Share of training pages degraded at all (each family below then with its own `prob`);
    # 0 leaves every page clean. Half: real pages are scanned or photographed, and the clean
    # half keeps clean pages' figures. Not tuned (each trial is a training run); against 0, it
    # lifts the held-out real page under every capture, the scans of validation from 0.88x of
    # their clean figure to 0.94-0.99x (two seeds), and costs some clean validation (BENCHMARKS.md,
    # "Degradations in training").
    c.data.degrade.rate = 0.5
    # Each family's `prob` is its chance on a degraded page.
    # The verso mirrored, blurred by `sigma` px and darkening the paper by up to `alpha`.
    c.data.degrade.bleed_through = ml_collections.ConfigDict(
        {"prob": 0.15, "alpha": (0.05, 0.25), "sigma": (1.0, 3.0)}
    )
    # White -> a `paper` grey level, black -> an `ink` level (linear map).
    c.data.degrade.grey_paper = ml_collections.ConfigDict(
        {"prob": 0.4, "paper": (200, 245), "ink": (0, 60)}
    )
    # Low-frequency noise: one value per `cell` px, std `strength` grey levels.
    c.data.degrade.paper_texture = ml_collections.ConfigDict(
        {"prob": 0.25, "strength": (4.0, 16.0), "cell": (8, 32)}
    )
    # Skew about the page centre, boxes re-boxed around their rotated corners.
    c.data.degrade.rotation = ml_collections.ConfigDict({"prob": 0.3, "degrees": (-2.0, 2.0)})
    # A camera not square to the page: corners moved by up to `shift` of the page's size.
    c.data.degrade.perspective = ml_collections.ConfigDict({"prob": 0.2, "shift": (0.0, 0.015)})
    # A page not lying flat: a smooth displacement field whose largest shift is `amplitude` px.
    c.data.degrade.warp = ml_collections.ConfigDict({"prob": 0.2, "amplitude": (0.5, 2.0)})
    # A smooth light field times the page; its darkest point is drawn from `darkest`.
    c.data.degrade.uneven_light = ml_collections.ConfigDict({"prob": 0.3, "darkest": (0.6, 0.9)})
    # Gaussian blur of `sigma` px (defocus, scanner optics).
    c.data.degrade.blur = ml_collections.ConfigDict({"prob": 0.3, "sigma": (0.3, 1.2)})
    # Shrunk by `factor` and enlarged back: a lower-resolution capture.
    c.data.degrade.resolution = ml_collections.ConfigDict({"prob": 0.2, "factor": (0.4, 0.8)})
    # Gaussian sensor noise, std `sigma` grey levels.
    c.data.degrade.noise = ml_collections.ConfigDict({"prob": 0.3, "sigma": (2.0, 12.0)})
    # Bilevel scan: Otsu's threshold with `otsu_prob`, otherwise a fixed `level`.
    c.data.degrade.threshold = ml_collections.ConfigDict(
        {"prob": 0.1, "otsu_prob": 0.5, "level": (100, 180)}
    )
    # JPEG re-encoding at a `quality` drawn from the range.
    c.data.degrade.jpeg = ml_collections.ConfigDict({"prob": 0.3, "quality": (30, 90)})

    # --- Engraved corpus (dwd_jax.engrave, `run.py generate`) ---------------------------------
    c.engrave = ml_collections.ConfigDict()
    c.engrave.num_pages = 360  # Pages to engrave (music21's corpus and generated music).
    c.engrave.workers = 2  # Worker processes (verovio crashes are isolated per worker).
    # Each piece's engraver is drawn (seeded) from these: about half the pieces are engraved
    # by LilyPond (the engraver DeepScoresV2 was made with; most of the engraving's 3.5 minutes;
    # without it validation's LilyPond pages scored 0.574 against 0.668 mAP@.5, BENCHMARKS.md).
    # A corpus engraved with other engravers is refused, as for any other setting here.
    c.engrave.engravers = ("verovio", "lilypond")
    # Share of the pieces that are generated music (dwd_jax.engrave.compose: articulations,
    # bowings, ornaments, dynamics and hairpins, tuplets, every time-signature digit, C and
    # octave clefs, grace notes, double accidentals, flags to 64ths, repeats, braces), which
    # the music21 corpus barely holds: half brings every class that occurs to at least 200
    # training objects (benchmarks/corpus_counts.py). 0 = the corpus alone. A corpus
    # engraved with another share is refused.
    c.engrave.generated_share = 0.5
    # Share of the generated pieces that also hold the marks of the DeepScoresV2 classes the
    # above leaves out (fingerings, tremolos, arpeggios, caesuras, pedalling, segno and coda,
    # ottavas, multi-measure rests, percussion and two-octave clefs, 128ths, grace notes of
    # every value, tuplets of every digit; compose.EVERY_CLASS), spread evenly over them;
    # configs/every_class.py uses them. 0 here: at this run's 7500 steps, a model trained on
    # a 480-page corpus of them scored 0.650 against the then default model's 0.789 mAP@.5
    # on the default corpus's test split (more look-alike classes, and busier pages;
    # BENCHMARKS.md, "Every class").
    c.engrave.every_class_share = 0.0
    # Shares of works (not files or pages: every file of one mass, opus or numbered work lies
    # in one split, `engrave.corpus.work_of`) in the test and validation splits.
    c.engrave.test_fraction = 0.2
    c.engrave.validation_fraction = 0.1
    c.engrave.pages_per_piece = 2  # Pages taken from the start of each piece, at most.
    c.engrave.width_range = (1960, 2700)  # Page width in px (as DeepScoresV2's); A4 aspect.
    c.engrave.staff_space_ratio = (0.0075, 0.0100)  # Staff space / page width (DSv2 ~0.0087).
    c.engrave.piece_timeout_s = 300.0  # A piece engraving longer is abandoned and counted.

    # --- Model (dwd_jax.modeling.model) -----------------------------------------------------------
    c.model = ml_collections.ConfigDict()
    # The class list (dwd_jax.classes.CLASS_LISTS); the class head has one output per class
    # plus background. The post-processing rules (config.omr) name DeepScores classes.
    c.model.classes = "deepscores"
    c.model.depth = 18  # ResNet v1 depth: 18, 34, 50, 101 or 152.
    c.model.width = 0.5  # Channel multiplier of the backbone and decoder.
    # RefineNet channels (before `width`). The paper's 256 makes the stride-4 decoder two
    # thirds of a step's FLOPs; 64 (32 after width 0.5) halves the default step time.
    c.model.decoder_channels = 64
    # Backbone normalisation: "group", "image" (per-image statistics), "batch" (per-batch
    # statistics) or "none" (dwd_jax.modeling.model's docstring compares them).
    c.model.norm = "group"
    c.model.norm_groups = 32  # GroupNorm groups (gcd with the channel count when they differ).
    c.model.dtype = "float32"  # Compute dtype: "float32" or "bfloat16" (params stay f32).
    # Recompute the backbone's residual units and the decoder's refine blocks in the backward
    # pass instead of keeping their activations: less memory, one more forward pass through
    # them. The parameters are the same either way. The default fits in memory without it.
    c.model.remat = False
    # Box head: "log" regresses log sizes (the loss weighs relative errors, as IoU does);
    # "linear" regresses pixels (the original), where staffs' errors drown noteheads'.
    c.model.box_head = "log"
    # A head regressing (dy, dx) from each marker pixel to its box centre (our extension): the
    # decoded centre is then the core's mean of pixel + offset, not quantised to the stride.
    c.model.offset_head = True
    # A learned (height, width) per class that the box head's output is added to, chosen by
    # the pixel's own class probabilities (our extension): the head then regresses only an
    # object's departure from its class's size; without it whole classes came out biased
    # (G clefs 1.3x too large). Needs class supervision at every box stride.
    c.model.class_size_prior = True
    c.model.output_strides = (2, 8, 16)  # Strides at which heads are evaluated (finest decodes).

    # --- Targets (dwd_jax.modeling.targets) -------------------------------------------------------
    c.targets = ml_collections.ConfigDict()
    c.targets.energy_levels = 20  # Quantised energy levels, 0 = background (spec section 3).
    c.targets.energy_marker = 17  # Oval energy-marker size in input pixels (spec section 3).
    # Class-marker size in input pixels (the spec's). 17, as wide as the energy marker, gives
    # the class head every pixel the decoder groups and removes the "pixels" class split's
    # fragments; it scored higher on clean validation (mAP@.5 0.632 against 0.619) but lower
    # on the degraded validation pages and the test split (BENCHMARKS.md, "Class marker").
    c.targets.class_marker = 9
    c.targets.box_marker = 9  # Box-marker size in input pixels.
    # Energy groups (tuple of tuples of class names; unnamed classes join group 0; () = one
    # group, the original). Long thin symbols whose centre lands on another symbol get their
    # own maps: 99.6 % of the real sample page decodes from its targets, 95.8 % with one group.
    c.targets.energy_groups = (
        (),
        (
            "ledgerLine",
            "staff",
            "stem",
            "beam",
            "slur",
            "tie",
            "dynamicCrescendoHairpin",
            "dynamicDiminuendoHairpin",
            "tupletBracket",
            "ottavaBracket",
        ),
    )
    # Line classes (dwd_jax.modeling.targets): their markers run along the box's long axis, a
    # pixel regresses the box cut to `line_reach` px either side of it, and the decoder takes
    # the union of those boxes. () = every object's markers are centred ovals (the original).
    # configs/line_targets.py names beams, ledger lines, slurs, ties, hairpins and brackets:
    # on validation those rise network alone (beam AP@.5 0.04 -> 0.20, tie 0.08 -> 0.23) and
    # the shipped mAP@.5 with them (0.590 -> 0.604), but stems fall (0.61 -> 0.19) and so
    # does the network's mAP@[.5:.95] (0.261 -> 0.242), so the default keeps ovals
    # (BENCHMARKS.md, "Line targets").
    c.targets.line_classes = ()
    c.targets.line_marker = 9  # Width of their energy ridge (odd; a staff space at data.scale).
    c.targets.line_reach = 32.0  # Model-input px: about 3 staff spaces at data.scale.
    # Line objects per crop given line markers (the rest keep ovals); a 320 crop holds tens.
    c.targets.max_line_objects = 256
    # Fitted classes (dwd_jax.modeling.targets): their energy oval is cut to the box, its
    # half-axes half the box's sides, at least `fitted_min_radius` input px and at most the
    # oval's radius, so thin objects stacked closer than the oval (ledger lines a staff space
    # apart) get a gap of background between them. () = every energy oval has the one size
    # (the original). With ledger lines fitted the network alone found them four to five
    # times as well as one default run did (validation AP@.5 0.02 -> 0.11, test 0.04 ->
    # 0.17), but two seeds of the present default reach 0.16 and 0.03 without them: the
    # gain lies within the spread between runs, as do the means, and the real page was lower
    # (0.800 -> 0.788 mAP@.5). Stems, beams and ties fitted too lowered validation (0.788 ->
    # 0.763) and beams with it (BENCHMARKS.md, "Fitted energy ovals").
    c.targets.fitted_classes = ()
    c.targets.fitted_min_radius = 4.0

    # --- Losses (dwd_jax.modeling.losses; spec section 4) -----------------------------------------
    c.loss = ml_collections.ConfigDict()
    c.loss.energy_strides = (2, 8, 16)  # model.output_strides where energy is supervised.
    # model.output_strides where class is supervised (8 too: the size prior reads the class
    # probabilities at every box stride).
    c.loss.class_strides = (2, 8)
    c.loss.box_strides = (2, 8)  # model.output_strides where box is supervised.
    # Energy cross-entropy on a class's marker pixels weighted by (its marker pixels in the
    # batch) ** -this, mean 1 (losses.class_balance): 0 = every pixel alike (the original),
    # 1 = every class present weighs the same. Small rare marks (dots, staccato, naturals)
    # otherwise drown in noteheads and stems.
    c.loss.energy_class_balance = 1.0
    # The same weights on the class cross-entropy: 0 = every marker pixel alike (the original).
    # Rare look-alikes (naturals, flats) are otherwise read as the common one. Both balances,
    # the loss factors and train.steps are not re-tuned on validation: each trial is a whole
    # training run.
    c.loss.class_loss_balance = 1.0
    c.loss.offset_strides = (2, 8)  # Where the offset head is supervised (with model.offset_head).
    # The offset head's error in input "pixels" or in "box" sides (each axis's error over the
    # box's side on it, as IoU counts it; dwd_jax.modeling.losses.offset_loss). "box" centres
    # stems better network alone (validation AP@.5 0.45 -> 0.52) but costs nearly every
    # other class (mAP@.5 0.801 -> 0.718 shipped; BENCHMARKS.md, "Offset error in box sides").
    c.loss.offset_units = "pixels"
    # With "box": sides above this many input pixels count as this many (0 = no cap), so only
    # an axis thinner than it (a stem's width, a ledger line's height) weighs more than in
    # pixels and the other symbols keep their relative weights. 4 halves what "box" costs
    # (mAP@.5 0.801 -> 0.762 shipped) and centres stems better still (network alone 0.45 ->
    # 0.67): not the default either. With the offset factor doubled (combined_factors below),
    # over two seeds, it keeps the stems (0.68 and 0.67) and raises mAP (0.538 against 0.528
    # shipped on validation, three default seeds), but mAP@.5 stays level (0.797 against
    # 0.794): not the default (BENCHMARKS.md, "Offset error in box sides").
    c.loss.offset_max_side = 0.0
    # (energy, class, box, offset) factors of the combined loss (the original's 2, 1, 1, and 1
    # for the offset head, which is normalised on its own).
    c.loss.combined_factors = (2.0, 1.0, 1.0, 1.0)
    c.loss.normaliser_window = 5  # Combined loss divides each head by its mean of this many steps.
    # Stages (head, steps) run in order, each optimising only its head's loss ("combined" = all,
    # normalised); the last stage continues past its end. The paper's energy/class/box/energy/
    # combined stages (configs/deepscores_v2.py) spend 70 % of a short run on single heads;
    # here every head trains from the first step.
    c.loss.schedule = (("combined", 1),)

    # --- Losses and training (dwd_jax.modeling.losses, dwd_jax.training.train) --------------------
    c.train = ml_collections.ConfigDict()
    # Total optimiser steps: sized so that `python run.py` (engraving, training, evaluation)
    # takes under an hour on 2 CPU cores (about 44 minutes of training at 2.8 steps/s).
    # Longer trains better: 10000 steps scored 0.09 mAP@.5 above 7500 on validation
    # (BENCHMARKS.md, "Training longer"), at 15 more minutes.
    c.train.steps = 7500
    # "rmsprop" (TF1 semantics, spec section 4; configs/deepscores_v2.py) or "adam", which
    # moves a short CPU run faster.
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3  # Peak learning rate (the paper: 1e-4 with RMSProp).
    # "constant" (the paper) or "cosine": linear warm-up, then a cosine decay to 0 at the
    # last step, which a short run needs to end sharp.
    c.train.lr_schedule = "cosine"
    c.train.warmup_steps = 200  # Warm-up steps of the cosine schedule.
    c.train.rmsprop_decay = 0.995  # RMSProp mean-square decay (spec section 4).
    c.train.weight_decay = 5e-7  # L2 factor on all weights, added to the loss (spec section 4).
    c.train.log_every = 10  # Steps between metric logs (progress bar, TensorBoard, JSONL).
    c.train.picture_every = 500  # Steps between PNGs of predicted vs target maps; 0 = never.
    c.train.checkpoint_every = 500  # Steps between orbax checkpoints (about 3 minutes).
    # Steps between validation mAPs (and at the last step) in the log and learning curves,
    # on `eval.during_training_pages` pages of data.eval_split; 0 = never.
    c.train.eval_every = 2500
    c.train.keep_checkpoints = 3  # Checkpoints kept.

    # --- Decoding (dwd_jax.decoding.decode) -------------------------------------------------------
    # The thresholds below are checked on the validation split, one change at a time
    # (benchmarks/tune_on_validation.py; BENCHMARKS.md gives the table).
    c.decode = ml_collections.ConfigDict()
    c.decode.energy_cutoff = 1  # Levels 0..cutoff are background (spec section 6).
    # Foreground = P(level > cutoff) > this; 0 = argmax level > cutoff (the original). A short
    # CPU run spreads foreground mass over many levels, so its argmax is mostly background.
    # 0.2, 0.3 and 0.4 are within 0.003 mAP of one another on validation.
    c.decode.foreground_threshold = 0.3
    c.decode.min_size = 4  # Components with fewer pixels are dropped.
    # Detections per page (padded; overflow is reported and the lowest-scoring regions are
    # lost). Dense LilyPond pages decode 2,260-2,600 regions: at 2048, 6 of the 31 validation
    # pages overflowed (mAP@.5 0.619 -> 0.621 at 4096, none overflowing); an evaluation takes
    # 1.06x as long (BENCHMARKS.md).
    c.decode.max_detections = 4096
    # Watershed: split peaks this many levels above a saddle; 0 = off. 3 and 4 tie on
    # validation, 2 is lower.
    c.decode.saddle_depth = 3.0
    # Keep classes apart in the watershed so a weak small symbol beside a large one keeps its
    # own region: "pixels" (pixels of different argmax classes are not neighbours), "peaks"
    # (basins whose peak classes differ never merge) or "none" (the original). "pixels" is the
    # higher on validation (mAP@.5 0.619 / 0.550 against 0.590 / 0.517, shipped / network
    # alone) and on every condition of the robustness set (BENCHMARKS.md, "Line targets").
    c.decode.class_split = "pixels"
    # Box size read over an object's core: "max" (the original) or "mean", which a noisy box
    # map needs: "max" is lower on validation (network alone mAP 0.225 against 0.264).
    c.decode.box_size = "mean"
    c.decode.class_box_sizes = ()  # ((class_name, height, width), ...): cached sizes to use.
    c.decode.ccl_max_iterations = 32  # Components-loop guard (saddle_depth 0); hits are reported.
    # Foreground pixels read per page and energy group (a static budget: the class logits are
    # read only there; decode time grows with it). The real sample page's targets at stride 2
    # (960x720) have 13.8k and 10.3k; pixels past the budget, in raster order, read as
    # background and set `overflow`. Three of the 34 validation pages (dense generated music)
    # passed 32768 and lost objects (their mAP@.5 0.768 against 0.810 with none lost).
    c.decode.max_foreground_pixels = 65536

    # --- Post-processing on the ink (dwd_jax.omr, after decoding, in page pixels) -------------
    c.omr = ml_collections.ConfigDict()
    # Every rule below on (the shipped pipeline) or off (the network's detections as decoded,
    # the original method). Evaluation reports both. Each rule is kept because switching it
    # off alone lowers validation's mAP (benchmarks/tune_on_validation.py), or, for those made
    # for scans and photographs, the robustness set's.
    c.omr.enabled = True
    # Thin-line classes whose thin side is re-measured on the page's ink after decoding
    # (dwd_jax.omr.ink, our extension): IoU 0.5 on a 2-px stem needs a sub-pixel centre, which
    # the stride-2 outputs at scale 0.5 do not give. () = off (the original).
    c.omr.line_classes = ("stem", "ledgerLine")
    # Solid classes whose box becomes the box of the ink under it once strokes thinner than
    # 0.35 staff spaces are opened away (dwd_jax.omr.ink): a beam's ends decide its box, and
    # the ink has them exactly; so do black note heads and whole, half and breve rests (not
    # hollow heads, whose opening breaks their ring). () = off.
    c.omr.solid_classes = (
        "beam",
        "noteheadBlackOnLine",
        "noteheadBlackInSpace",
        "restWhole",
        "restHalf",
        "restDoubleWhole",
    )
    # Symbol classes whose box becomes the box of their own ink component once the staff lines
    # are erased (dwd_jax.omr.ink.snap_symbols, dwd_jax.omr.staves): the symbols that stand
    # apart once the lines are gone. Not note heads with stems, flags, beams or
    # time-signature digits (they touch other symbols), nor ties (staff-line removal cuts
    # them), nor dynamics' letters (joined in "mf", "sfz") or the common-time C (validation
    # scores them lower re-measured). () = off.
    c.omr.symbol_classes = (
        "augmentationDot",
        "articStaccatoAbove",
        "articStaccatoBelow",
        "repeatDot",
        "fermataAbove",
        "noteheadWholeOnLine",
        "noteheadDoubleWholeOnLine",
        "noteheadDoubleWholeInSpace",
        "clefG",
        "clefF",
        "clefCAlto",
        "clefCTenor",
        "keyFlat",
        "keySharp",
        "accidentalSharp",
        "accidentalFlat",
        "accidentalNatural",
        "restQuarter",
        "rest8th",
        "rest16th",
        "slur",
        "stringsUpBow",
        "stringsDownBow",
        "tuplet3",
    )
    # A symbol takes its component's box only if the component's height and width are within
    # this factor of the decoded box's (on a blurred scan a symbol merges with its neighbour or
    # falls apart); inf = always.
    c.omr.symbol_max_change = 2.0
    # ...and for flats, naturals and sharps this factor: on a photographed page a blurred
    # natural joins its neighbour into a component about twice its width (1.93 times), and at
    # 2.0 the post-processing lowered the photographed copies' naturals and sharps below the
    # network alone; 1.6 and 1.4 mended both and moved no clean, scanned or coarse figure by
    # more than 0.0002 (the robustness pages, validation's).
    c.omr.accidentals_max_change = 1.6
    # ...and only if the component holds this share of the ink inside the decoded box: a
    # symbol that fell apart (a photographed ring, a faded clef) leaves its largest piece short
    # of it (tuned on validation, clean and degraded: 0.6-0.8 alike; 0 = never checked).
    c.omr.symbol_min_share = 0.6
    # The `staff` class from the staves found on the ink (dwd_jax.omr.staves) instead of the
    # network, which never sees a whole staff in a 320-px crop; ledger lines inside a found
    # staff are dropped. False = the network's (the original).
    c.omr.staves_from_ink = True
    # Ledger lines from the note heads found beyond a staff (dwd_jax.omr.ledgers: where
    # notation puts them, measured on the ink) instead of the network's, which misses many at
    # one pixel thick. It finds the staves on the ink itself, whatever staves_from_ink says.
    # False = the network's.
    c.omr.ledger_lines_from_heads = True
    # Dots from the ink, named by their place (dwd_jax.omr.dots): right of a note head or rest
    # an augmentation dot, on a head's column a staccato above or below it, mirrored across a
    # staff's middle line beside a barline a repeat dot. The network's dot detections only
    # give their scores (one glyph, four classes: the network reads the place poorly).
    # False = the network's.
    c.omr.dots_from_ink = True
    # Flats, naturals and sharps renamed by their shape on the ink (dwd_jax.omr.accidentals:
    # how far the strokes at each side reach); the network confuses flats and naturals. One
    # whose component holds less than symbol_min_share of its box's ink fell apart (a
    # photograph's faded stroke) and keeps the network's class. False = the network's.
    c.omr.accidentals_by_shape = True
    # ...only those the network scores below this; a surer one keeps the network's class (on
    # scanned, photographed and coarse validation pages the ones the shape misread scored
    # 0.57-0.79 but one, nine in ten of those it mended under 0.41; tuned on validation, clean
    # and degraded: 0.5-0.55 alike). inf = every one.
    c.omr.accidentals_max_score = 0.55
    # C clefs named by the staff line nearest the middle of their thick bar on the ink
    # (dwd_jax.omr.clefs): tenor on the second line from the top, alto on any other, as
    # DeepScores names them; the network confuses the two. A clef it named both ways is then
    # one detection, the higher-scored (clefs.drop_doubles). False = the network's.
    c.omr.c_clefs_by_line = True
    # The rules read the page divided by its paper's level (dwd_jax.omr.capture.flatten), so
    # grey or unevenly lit paper is white; an engraved page is unchanged. False = as it is.
    c.omr.flatten = True
    # Staff and ledger lines (and the skew) are read below Otsu's level of the flattened page
    # instead of 128 where the staves found there outnumber those found below 128
    # (dwd_jax.omr.ink.line_level): a blurred or low-resolution capture's thin lines are paler
    # than 128. Symbols are read below 128 either way. False = always 128.
    c.omr.pale_lines = True
    # The rules run on the page turned upright (dwd_jax.omr.capture.skew) when its lines
    # climb at least min_skew_drift staff spaces across the page (0.12 degrees on a printed
    # page): they assume level staves. False = as it lies.
    c.omr.deskew = True
    c.omr.min_skew_drift = 0.25

    # --- Evaluation (dwd_jax.eval.evaluate) -------------------------------------------------------
    c.eval = ml_collections.ConfigDict()
    c.eval.max_pages = 0  # Pages of the eval split to evaluate; 0 = all.
    # The headline mAP averages every class with ground truth; a second, labelled mean
    # averages the classes with at least this many ground-truth objects.
    c.eval.min_instances = 20
    c.eval.during_training_pages = 8  # Validation pages scored every train.eval_every steps.
    c.eval.num_worst_pages = 8  # Lowest-F1 pages listed in the report and drawn as overlays.

    # --- Robustness development set (dwd_jax.eval.robustness, `run.py robustness`) ----------------
    # The eval split's pages (or a folder's) under fixed degradations unlike training's draws:
    # fixed values, several beyond data.degrade's ranges, families combined as in a real scan
    # or photograph. Each condition names dwd_jax.data.degrade families with their parameters (all
    # applied, ranges of one value) and optionally `scale` (captured at another resolution).
    # Pixels are the stored page's (a staff space of about 20 px), not training's scaled ones.
    c.robustness = ml_collections.ConfigDict()
    c.robustness.seed = 1234  # Page i of condition k draws from (seed, k, i).
    c.robustness.conditions = ml_collections.ConfigDict(
        {
            # A flat-bed scan: grey, slightly textured paper, optics blur, sensor noise.
            "scan": {
                "grey_paper": {"paper": (228.0, 228.0), "ink": (40.0, 40.0)},
                "paper_texture": {"strength": (8.0, 8.0), "cell": (40, 40)},
                "blur": {"sigma": (1.2, 1.2)},
                "noise": {"sigma": (10.0, 10.0)},
            },
            # A phone photograph: light falling off, a tilted camera, a page not lying flat.
            "photo": {
                "perspective": {"shift": (0.02, 0.02)},
                "warp": {"amplitude": (4.0, 4.0)},
                "uneven_light": {"darkest": (0.55, 0.55)},
                "blur": {"sigma": (1.5, 1.5)},
                "noise": {"sigma": (7.0, 7.0)},
                "jpeg": {"quality": (70, 70)},
            },
            "rotated": {"rotation": {"degrees": (1.0, 1.0)}},  # A page fed in skewed.
            # A bilevel (fax-like) scan: Otsu's threshold of a slightly blurred page.
            "bilevel": {
                "blur": {"sigma": (1.0, 1.0)},
                "threshold": {"otsu_prob": 1.0, "level": (128.0, 128.0)},
            },
            "jpeg": {"jpeg": {"quality": (20, 20)}},  # Heavy compression.
            "low_resolution": {"resolution": {"factor": (0.35, 0.35)}},  # A coarse capture.
            # Thin paper: the verso showing through on cream paper.
            "bleed_through": {
                "grey_paper": {"paper": (235.0, 235.0), "ink": (20.0, 20.0)},
                "bleed_through": {"alpha": (0.35, 0.35), "sigma": (2.0, 2.0)},
            },
            "smaller": {"scale": 0.6},  # Another resolution: staff space x 0.6...
            "larger": {"scale": 1.4},  # ...and x 1.4.
        }
    )

    # --- Detection on new pages (dwd_jax.detection.detect, `run.py detect`) -----------------------
    c.detect = ml_collections.ConfigDict()
    # Staff spacing (px) every page is rescaled to before the model sees it (split, folder or
    # user's page alike). Training pages' spacing at data.scale spans 7.3-13.5 px; on
    # validation 10 beats 9.5 and 8.5 (DeepScoresV2's 17 px x 0.5) and a fixed data.scale.
    c.detect.staff_space = 10.0
    c.detect.scale = 0.0  # Fixed page scale, skipping the staff-space estimate; 0 = estimate.
    # The network reads the page lit evenly (dwd_jax.omr.capture.even_light): a photograph's
    # shadows taken out, the paper's and the ink's greys kept (training's degraded pages have
    # grey paper and ink; flattening to white paper and black ink, as the rules read a page,
    # thickens a blurred scan's strokes and lowers its figures). BENCHMARKS.md, "Robustness set".
    c.detect.even_light = True
    c.detect.max_pixels = 2_560_000  # Pixels per forward pass; bigger pages go in bands.
    c.detect.overlap = 160  # Rows shared by neighbouring bands (> the tallest symbol).
    # The least score a detection needs to be written and drawn by `run.py detect`: per class
    # in `class_min_scores` ((class_name, score), ...), else `min_score`. Evaluation ranks every
    # detection, as COCO's AP wants; a reader wants the weak ones gone, and classes' scores are
    # not on one scale. Tuned on validation for the highest F1 at IoU 0.5 of each class with 20
    # objects there, the rest sharing one (benchmarks/score_thresholds.py prints both lines).
    # 0 and () write every detection; a model of your own wants its own (they are its scores').
    c.detect.min_score = 0.35
    c.detect.class_min_scores = (
        ("brace", 0.25), ("ledgerLine", 0.12), ("repeatDot", 0.18), ("clefG", 0.52),
        ("clefCAlto", 0.15), ("clefF", 0.52), ("clef8", 0.57), ("timeSig1", 0.54),
        ("timeSig2", 0.65), ("timeSig3", 0.22), ("timeSig4", 0.69), ("timeSig5", 0.39),
        ("timeSig6", 0.35), ("timeSig8", 0.61), ("timeSig9", 0.41), ("timeSigCommon", 0.53),
        ("timeSigCutCommon", 0.43), ("noteheadBlackOnLine", 0.60),
        ("noteheadBlackOnLineSmall", 0.59), ("noteheadBlackInSpace", 0.48),
        ("noteheadBlackInSpaceSmall", 0.36), ("noteheadHalfOnLine", 0.67),
        ("noteheadHalfInSpace", 0.56), ("noteheadWholeOnLine", 0.58),
        ("noteheadWholeInSpace", 0.64), ("augmentationDot", 0.31), ("stem", 0.36),
        ("flag8thUp", 0.49), ("flag8thUpSmall", 0.69), ("flag16thUp", 0.61), ("flag32ndUp", 0.56),
        ("flag64thUp", 0.32), ("flag8thDown", 0.52), ("flag8thDownSmall", 0.39),
        ("flag16thDown", 0.65), ("flag32ndDown", 0.40), ("flag64thDown", 0.31),
        ("accidentalFlat", 0.57), ("accidentalFlatSmall", 0.55), ("accidentalNatural", 0.50),
        ("accidentalNaturalSmall", 0.46), ("accidentalSharp", 0.50), ("accidentalSharpSmall", 0.60),
        ("accidentalDoubleSharp", 0.69), ("accidentalDoubleFlat", 0.46), ("keyFlat", 0.46),
        ("keyNatural", 0.22), ("keySharp", 0.57), ("articAccentAbove", 0.37),
        ("articAccentBelow", 0.64), ("articStaccatoAbove", 0.16), ("articStaccatoBelow", 0.20),
        ("articTenutoAbove", 0.44), ("articTenutoBelow", 0.49), ("articStaccatissimoAbove", 0.61),
        ("articStaccatissimoBelow", 0.47), ("articMarcatoAbove", 0.58), ("articMarcatoBelow", 0.56),
        ("fermataAbove", 0.47), ("fermataBelow", 0.35), ("restDoubleWhole", 0.60),
        ("restWhole", 0.55), ("restHalf", 0.71), ("restQuarter", 0.50), ("rest8th", 0.52),
        ("rest16th", 0.55), ("rest32nd", 0.52), ("rest64th", 0.31), ("dynamicP", 0.60),
        ("dynamicM", 0.73), ("dynamicF", 0.46), ("dynamicS", 0.49), ("dynamicZ", 0.73),
        ("dynamicR", 0.58), ("ornamentTrill", 0.56), ("ornamentTurn", 0.37),
        ("ornamentTurnInverted", 0.39), ("ornamentMordent", 0.63), ("stringsDownBow", 0.59),
        ("stringsUpBow", 0.65), ("tuplet3", 0.42), ("tuplet6", 0.60), ("slur", 0.15),
        ("beam", 0.18), ("tie", 0.16), ("dynamicCrescendoHairpin", 0.37),
        ("dynamicDiminuendoHairpin", 0.18), ("tuplet5", 0.40), ("tuplet7", 0.58),
        ("tupletBracket", 0.37), ("staff", 0.68),
    )
    # Bands per device in one call; a batch is this times the local device count. On CPU a
    # batch of 2 costs twice one, so 1; raise it on accelerators.
    c.detect.batch_per_device = 1
    # PDF pages are rendered at this resolution (a printed score's staff space is then about
    # 20-25 px, rescaled to detect.staff_space like any page).
    c.detect.pdf_dpi = 300.0
    c.lock()  # A misspelt field, here or in a --config.x override, is an error naming it.
    return c
