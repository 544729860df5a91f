"""`generate`: the engraved DeepScoresV2-format corpus, parallel, crash-isolated, resumable.

Each piece is engraved by one engraver, verovio (`piece`) or LilyPond (`lilypond`), drawn per
piece (`engraver_of`); their pages are told apart by name (LilyPond's say `emmentaler`).

Layout written (the DeepScoresV2 release's, so one reader serves both):
  out_dir/images/<name>.png          grey 8-bit pages
  out_dir/deepscores_{train,validation,test}.json   DeepScoresV2 schema (see `dsv2`); a work
                                     (`corpus.work_of`) lies in one split
  out_dir/shards/<piece>.json        per-piece annotations the two JSONs are assembled from
  out_dir/engrave_settings.json      the settings the folder was made with (resume guard)
"""

from __future__ import annotations

import json
import os
import time
import zlib

import numpy as np
import verovio
from tqdm import tqdm

from dwd_jax.engrave import compose, corpus, dsv2, lilypond, piece, pool
from dwd_jax.engrave.piece import PieceTask
from dwd_jax.engrave.style import sample_style

# Raised whenever what a piece's pages hold changes (the annotation rules or what an engraver
# is given), so a corpus made by older rules is refused (by `_check_settings`) instead of mixed
# with new pages. 2: beam segments joined into lines. 3: LilyPond draws MusicXML's inverted
# fermatas and marks placed below the staff there, as verovio does. 4: LilyPond is given a
# piano's brace, repeat barlines and octave-down bass clefs. 5: verovio's fingerings boxed and
# its multi-measure rests drawn as H-bars; LilyPond given segno and coda marks, ottavas,
# caesuras, tremolos, arpeggios, pedalling, multi-measure rests and two-octave clefs, and a
# tuplet number boxed per digit. 6: generated tuplets written as composed (no tied tuplet notes
# where a grace note interrupts a group); LilyPond given unmarked tuplet notes in a `\times`.
ANNOTATION_RULES = 6

# Engraver name -> its worker function (`piece.engrave_piece`'s contract).
_ENGRAVE_PIECE = {"verovio": piece.engrave_piece, "lilypond": lilypond.engrave_piece}
ENGRAVERS = tuple(_ENGRAVE_PIECE)
# Third entry of the per-piece seed: the engraver draw is a stream apart from the style's, so
# adding an engraver leaves every piece's style as it was.
_ENGRAVER_STREAM = 1


def generate(out_dir: str, *, num_pages: int, seed: int = 0, workers: int = 2,
             test_fraction: float = 0.2, validation_fraction: float = 0.1,
             progress: bool = True, pages_per_piece: int = 2,
             width_range: tuple[int, int] = (1960, 2700),
             staff_space_ratio: tuple[float, float] = (0.0075, 0.0100),
             piece_timeout_s: float = 300.0, pieces: list[str] | None = None,
             engravers: tuple[str, ...] = ("verovio",), generated_share: float = 0.0,
             every_class_share: float = 0.0) -> dict:
    """Engraves `num_pages` pages of music21's corpus into a DeepScoresV2-format folder.

    Pieces are taken in a seeded order, each engraved by a seeded choice of engraver in its
    own seeded style (font, page size, staff size, spacing), up to `pages_per_piece` pages
    from its start. Pieces the engraver cannot load, and pieces whose worker process dies
    (verovio aborts on a few files), are skipped and counted. Re-running on the same folder
    redoes nothing already written.

    Args:
      out_dir: the folder to write (created if needed).
      num_pages: pages in the corpus (train + test).
      seed: same seed, same settings -> identical files.
      workers: worker processes.
      test_fraction: share of works (not pages) in the test split.
      validation_fraction: share of works in the validation split.
      progress: show a tqdm progress bar.
      pages_per_piece: pages taken from the start of each piece, at most.
      width_range: (min, max) page width in pixels; heights follow A4's aspect.
      staff_space_ratio: (min, max) staff space / page width (DeepScoresV2: about 0.0087).
      piece_timeout_s: a piece taking longer is abandoned and counted as crashed.
      pieces: score files to draw from instead of the whole music21 corpus.
      engravers: names from `ENGRAVERS`; each piece's is drawn from them (`engraver_of`).
      generated_share: share of the pieces, in engraving order, that are generated music
        (`compose`, written to `<out_dir>/generated/` by the worker that engraves it) rather
        than corpus files; 0 engraves the corpus alone, as before.
      every_class_share: share of the generated pieces composed with every class's marks
        (`compose.compose(every_class=True)`), spread evenly over them; 0 = none.

    Returns:
      stats: {"pages", "train_pages", "validation_pages", "test_pages", "pieces", "failed",
      "crashed", "resumed_pages", "new_pages", "seconds"}; "failed"/"crashed" list the
      skipped pieces' keys with the reason.

    Raises:
      ValueError: an unknown engraver, out_dir holds a corpus made with other settings, or two
        score files have the same piece key.
      ImportError: LilyPond is asked for but the `lilypond` wheel is not installed.
    """
    check_engravers(engravers)
    start = time.monotonic()
    images_dir = os.path.join(out_dir, "images")
    shards_dir = os.path.join(out_dir, "shards")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(shards_dir, exist_ok=True)
    if not 0.0 <= generated_share < 1.0:
        raise ValueError(f"generated_share={generated_share} is not in [0, 1).")
    if not 0.0 <= every_class_share <= 1.0:
        raise ValueError(f"every_class_share={every_class_share} is not in [0, 1].")
    if every_class_share and not generated_share:
        raise ValueError(f"every_class_share={every_class_share} is a share of the generated "
                         "pieces, and generated_share is 0: raise generated_share too.")
    # Only a corpus with generated music records its share and the composer's version: older
    # corpora still resume, and one of older generated music is refused.
    share = {}
    if generated_share:
        share = {"generated_share": generated_share, "compose": compose.VERSION}
        if every_class_share:
            share["every_class_share"] = every_class_share
    _check_settings(out_dir, {
        "seed": seed, "pages_per_piece": pages_per_piece, "width_range": list(width_range),
        "staff_space_ratio": list(staff_space_ratio), **_engraver_versions(engravers),
        "annotation_rules": ANNOTATION_RULES, **share,
    })

    order = corpus.engraving_order(pieces if pieces is not None else corpus.corpus_pieces(), seed)
    if generated_share:
        order = _with_generated(order, os.path.join(out_dir, "generated"), seed, generated_share)
    keys = [corpus.piece_key(p) for p in order]
    _check_unique_keys(order, keys)
    shard_path = {k: os.path.join(shards_dir, f"{k}.json") for k in keys}
    done: dict[str, dict] = {}
    for k in keys:
        if os.path.exists(shard_path[k]):
            with open(shard_path[k]) as f:
                try:
                    done[k] = json.load(f)
                except json.JSONDecodeError as e:
                    raise ValueError(f"annotation shard {shard_path[k]} is not valid JSON ({e}); "
                                     "delete it and re-run to engrave that piece again") from None
    resumed = _prefix_pages(keys, done, num_pages)
    state = {"in_flight": 0}

    def enough() -> bool:
        return _prefix_pages(keys, done, num_pages) + state["in_flight"] * pages_per_piece \
            >= num_pages

    pending = iter([(p, k) for p, k in zip(order, keys, strict=True) if k not in done])

    def next_task() -> PieceTask | None:
        if enough():
            return None
        path, key = next(pending, (None, None))
        if key is None:
            return None
        state["in_flight"] += 1
        style = sample_style(key, seed=seed, width_range=width_range,
                             staff_space_ratio=staff_space_ratio)
        engraver = engraver_of(key, seed=seed, engravers=engravers)
        every_class = key.startswith(GENERATED) and _is_every_class(key, every_class_share)
        return PieceTask(path, key, style, pages_per_piece, images_dir, shard_path[key],
                         engraver, every_class)

    bar = tqdm(total=num_pages, initial=min(resumed, num_pages), unit="page",
               desc="engraving", disable=not progress)
    new_pages = 0
    for task, result in pool.map_isolated(engrave_task, next_task, workers=workers,
                                          timeout_s=piece_timeout_s):
        state["in_flight"] -= 1
        if isinstance(result, pool.WorkerDied | pool.TaskFailed):
            kind = "crashed" if isinstance(result, pool.WorkerDied) else "failed"
            # Recorded like a finished piece, so a resumed run does not retry it.
            result = {"key": task.key, "pages": [], kind: result.reason}
            dsv2.write_atomic(task.shard_path, dsv2.dumps(result))
        done[task.key] = result
        new_pages += len(result["pages"])
        bar.update(min(len(result["pages"]), bar.total - bar.n))
    bar.close()

    selected = _select(keys, done, num_pages)
    _remove_unselected(keys, done, selected, images_dir, shard_path)
    stats = _write_splits(out_dir, selected, done, seed=seed, num_pages=num_pages,
                          fractions={"test": test_fraction, "validation": validation_fraction})
    stats.update(
        pieces=sum(1 for k in selected if done[k]["pages"]),
        failed=[f"{k}: {done[k]['failed']}" for k in selected if "failed" in done[k]],
        crashed=[f"{k}: {done[k]['crashed']}" for k in selected if "crashed" in done[k]],
        resumed_pages=resumed, new_pages=new_pages, seconds=time.monotonic() - start,
    )
    return stats


def check_engravers(engravers: tuple[str, ...]) -> None:
    """Raises ValueError unless `engravers` is a non-empty tuple of names from `ENGRAVERS`."""
    names = () if isinstance(engravers, str) else tuple(engravers)
    unknown = [e for e in names if e not in ENGRAVERS]
    if not names or unknown:
        raise ValueError(
            f"config.engrave.engravers = {engravers!r} is invalid"
            + (f" (unknown: {', '.join(map(repr, unknown))})" if unknown else "")
            + f": expected a tuple of one or more of {ENGRAVERS}, e.g. "
            "--config.engrave.engravers='(\"verovio\", \"lilypond\")'.")


def engraver_of(piece_key: str, *, seed: int, engravers: tuple[str, ...]) -> str:
    """The engraver of one piece, a pure function of (piece_key, seed, the set of engravers).

    Drawn uniformly from the distinct names, taken in `ENGRAVERS` order (so their order and
    repeats in `engravers` change nothing), from a seed of its own beside the piece's style.

    Args:
      piece_key: stable name of the piece (`corpus.piece_key`).
      seed: corpus seed.
      engravers: names from `ENGRAVERS`.

    Returns:
      one of `engravers`.
    """
    names = [e for e in ENGRAVERS if e in engravers]
    rng = np.random.default_rng([seed, zlib.crc32(piece_key.encode()), _ENGRAVER_STREAM])
    return names[int(rng.integers(len(names)))]


def engrave_task(task: PieceTask) -> dict:
    """The workers' function: the piece's own engraver engraves it (`piece.engrave_piece`'s
    contract), a generated piece composed first if its file is not there yet."""
    if task.key.startswith(GENERATED) and not os.path.exists(task.path):
        os.makedirs(os.path.dirname(task.path), exist_ok=True)
        corpus_seed, index = _seed_and_index(task.key)
        compose.write(corpus_seed * 100_000 + index, task.path + ".tmp.musicxml",
                      every_class=task.every_class)
        os.replace(task.path + ".tmp.musicxml", task.path)
    return _ENGRAVE_PIECE[task.engraver](task)


GENERATED = "generated-"  # Key prefix of generated pieces.


def _seed_and_index(key: str) -> tuple[int, int]:
    """(corpus seed, index) of a generated piece's key `generated-<seed>-<index>.musicxml`."""
    corpus_seed, index = key.removeprefix(GENERATED).split(".")[0].split("-")
    return int(corpus_seed), int(index)


def _is_every_class(key: str, share: float) -> bool:
    """Whether generated piece `key` is composed with every class's marks: those where the
    running count of `share` x index reaches a new integer."""
    index = _seed_and_index(key)[1]
    return int((index + 1) * share) > int(index * share)


def _with_generated(order: list[str], folder: str, seed: int, share: float) -> list[str]:
    """`order` with a generated piece at every position where the running count of
    `share` x position reaches a new integer (so a prefix of any length holds about that
    share). Piece i of corpus seed s is `<folder>/generated-<s>-<i>.musicxml`, composed with
    seed s * 100000 + i."""
    out, made, corpus_pieces = [], 0, iter(order)
    for position in range(int(len(order) / (1.0 - share)) + 1):
        if int((position + 1) * share) > made:
            out.append(os.path.join(folder, f"{GENERATED}{seed:d}-{made:05d}.musicxml"))
            made += 1
        else:
            piece = next(corpus_pieces, None)
            if piece is None:
                break
            out.append(piece)
    return out


def _engraver_versions(engravers: tuple[str, ...]) -> dict[str, str]:
    """{name: version} of the engravers in use, for the settings check.

    Keyed by name, so a verovio-only corpus has the settings it had before LilyPond could be
    chosen (and is still resumed); asking LilyPond's binary stops a run without the wheel here,
    with the message naming it, instead of failing every LilyPond piece.
    """
    versions = {}
    if "verovio" in engravers:
        versions["verovio"] = verovio.toolkit(False).getVersion()
    if "lilypond" in engravers:
        versions["lilypond"] = lilypond.version()
    return versions


def _check_unique_keys(paths: list[str], keys: list[str]) -> None:
    """Page and shard names come from the piece key: two files with one key would overwrite
    each other's pages, leaving one piece's boxes on the other's image."""
    seen: dict[str, str] = {}
    for path, key in zip(paths, keys, strict=True):
        if key in seen:
            raise ValueError(
                f"{seen[key]} and {path} would both be engraved as {key!r} (their pages and "
                "annotations would overwrite each other); rename one of the files or put them "
                "in folders of different names")
        seen[key] = path


def _check_settings(out_dir: str, settings: dict) -> None:
    path = os.path.join(out_dir, "engrave_settings.json")
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
        if old != settings:
            raise ValueError(
                f"{out_dir} holds pages engraved with other settings ({old}); now asked for "
                f"{settings}. Use a new output folder, or delete {out_dir} to start over (the "
                "TFDS dataset is then rebuilt from the new pages).")
    dsv2.write_atomic(path, dsv2.dumps(settings))


def _prefix_pages(keys: list[str], done: dict, num_pages: int) -> int:
    """Pages in the finished pieces before the first unfinished one (the usable prefix)."""
    total = 0
    for k in keys:
        if k not in done or total >= num_pages:
            break
        total += len(done[k]["pages"])
    return total


def _select(keys: list[str], done: dict, num_pages: int) -> list[str]:
    """Shortest prefix of the engraving order holding `num_pages` pages (or all finished)."""
    selected, total = [], 0
    for k in keys:
        if total >= num_pages or k not in done:
            break
        selected.append(k)
        total += len(done[k]["pages"])
    return selected


def _remove_unselected(keys, done, selected, images_dir, shard_path) -> None:
    """Deletes pieces finished beyond the selection (in flight when it filled up).

    Keeps the folder a function of the seed alone, whatever the scheduling was.
    """
    chosen = set(selected)
    for k in keys:
        if k in done and k not in chosen:
            for page in done[k]["pages"]:
                path = os.path.join(images_dir, page["filename"])
                if os.path.exists(path):
                    os.remove(path)
            os.remove(shard_path[k])


def _write_splits(out_dir, selected, done, *, seed, fractions, num_pages) -> dict:
    """Numbers pages and annotations in engraving order; writes one JSON per split."""
    splits: dict[str, list[dict]] = {s: [] for s in corpus.SPLITS}
    split_of = {k: corpus.split_of(k, seed=seed, fractions=fractions) for k in selected}
    _fill_empty_splits(selected, split_of, fractions)
    image_id, ann_id = 1, 1
    for k in selected:
        for page in done[k]["pages"]:
            if image_id > num_pages:
                break
            splits[split_of[k]].append({**page, "image_id": image_id, "first_ann_id": ann_id})
            image_id += 1
            ann_id += len(page["annotations"])
    for split, pages in splits.items():
        dsv2.write_atomic(os.path.join(out_dir, f"deepscores_{split}.json"),
                          dsv2.dumps(dsv2.assemble(pages)))
    return {"pages": image_id - 1, **{f"{s}_pages": len(p) for s, p in splits.items()}}


def _fill_empty_splits(selected: list[str], split_of: dict[str, str], fractions) -> None:
    """Gives each empty split with a positive share the first work (in engraving order) of the
    split with the most works, while that one keeps at least one.

    A small corpus can draw no work for a split; TFDS cannot store an empty split. A work
    moves whole, so no work is split; the first pieces' pages are always within num_pages.
    """
    shares = {**fractions, "train": 1.0 - sum(fractions.values())}
    for split in corpus.SPLITS:
        if shares.get(split, 0) <= 0 or split in split_of.values():
            continue
        works = {s: list(dict.fromkeys(corpus.work_of(k) for k in selected if split_of[k] == s))
                 for s in corpus.SPLITS}
        donor = max(corpus.SPLITS, key=lambda s: len(works[s]))
        if len(works[donor]) < 2:
            return
        for k in selected:
            if corpus.work_of(k) == works[donor][0]:
                split_of[k] = split
