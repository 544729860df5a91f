"""The embedded corpus's splits: by work, three of them, and names that cannot collide."""

from __future__ import annotations

import collections
import os
import re

import pytest

from dwd_jax.engrave import corpus
from dwd_jax.engrave.generate import _fill_empty_splits, generate

FRACTIONS = {"test": 0.2, "validation": 0.1}


@pytest.fixture(scope="module")
def keys() -> list[str]:
    return [corpus.piece_key(p) for p in corpus.corpus_pieces()]


def _same_work_groups(keys: list[str]) -> dict[str, list[str]]:
    """Files that are one work, found from their names independently of `corpus.work_of`."""
    groups = collections.defaultdict(list)
    for k in keys:
        stem = re.sub(r"\.(mxl|xml|musicxml|krn|abc)$", "", k)
        groups[f"file:{stem}"].append(k)  # One file in two formats.
        if m := re.match(r"palestrina-\D+_(\d+)(_|$)", stem):
            groups[f"mass:{m[1]}"].append(k)  # Kyrie_16, Gloria_16_i, Agnus_II_16, ...
        if m := re.match(r"(\w+)-(?:.*_)?op(?:us)?_?(\d+)", stem):
            groups[f"opus:{m[1]}:{m[2]}"].append(k)  # opus18no1-movement2, op1n3, ...
        if m := re.match(r"bach-bwv(\d+)", stem):
            groups[f"bwv:{m[1]}"].append(k)
        if m := re.match(r"mozart-k(\d+)", stem):
            groups[f"k:{m[1]}"].append(k)
        if stem.startswith("oneills1850-"):
            groups["oneills1850"].append(k)  # Overlapping excerpts of one tune book.
    return {g: ks for g, ks in groups.items() if len(ks) > 1}


def test_no_work_crosses_a_split_on_the_corpus_list(keys):
    groups = _same_work_groups(keys)
    # The relations the corpus is known to hold are all found (a regex that matches nothing
    # would pass vacuously).
    assert len([g for g in groups if g.startswith("mass:")]) > 50
    known = {"opus:beethoven:18", "opus:schumann_clara:1", "bwv:248", "oneills1850"}
    assert known <= set(groups)
    assert {"palestrina-Agnus_II_16.krn", "palestrina-Credo_16_a.krn"} <= set(groups["mass:16"])
    for seed in (0, 1, 2):
        split = {k: corpus.split_of(k, seed=seed, fractions=FRACTIONS) for k in keys}
        for name, members in groups.items():
            assert len({split[k] for k in members}) == 1, (seed, name, members)


def test_three_splits_in_the_configured_shares():
    works = [f"composer-piece{i}.mxl" for i in range(4000)]
    counts = collections.Counter(corpus.split_of(w, seed=0, fractions=FRACTIONS) for w in works)
    assert set(counts) == {"train", "validation", "test"}
    shares = {s: n / len(works) for s, n in counts.items()}
    assert shares["test"] == pytest.approx(0.2, abs=0.02)
    assert shares["validation"] == pytest.approx(0.1, abs=0.015)


def test_small_corpus_fills_every_split_without_splitting_a_work():
    selected = ["a-opus1no1.mxl", "a-opus1no2.mxl", "b-x.mxl", "c-y.mxl", "d-z.mxl"]
    split_of = dict.fromkeys(selected, "train")
    _fill_empty_splits(selected, split_of, FRACTIONS)
    assert split_of["a-opus1no1.mxl"] == split_of["a-opus1no2.mxl"] == "test"
    assert split_of["b-x.mxl"] == "validation"
    assert split_of["c-y.mxl"] == split_of["d-z.mxl"] == "train"
    # An empty train split is filled too, from the split with the most works.
    split_of = {"a-x.mxl": "test", "b-y.mxl": "test", "c-z.mxl": "validation"}
    _fill_empty_splits(list(split_of), split_of, FRACTIONS)
    assert split_of == {"a-x.mxl": "train", "b-y.mxl": "test", "c-z.mxl": "validation"}


def test_piece_key_sees_the_corpus_through_a_symbolic_link(tmp_path, monkeypatch):
    path = corpus.corpus_pieces()[0]
    root = os.path.dirname(corpus.corpus.__file__)
    link = tmp_path / "linked_corpus"
    link.symlink_to(root, target_is_directory=True)
    expected = corpus.piece_key(path)
    assert "-" in expected  # Corpus-relative: collection and file.
    # The file reached through the link, and the module's own path through the link.
    assert corpus.piece_key(str(link / os.path.relpath(path, root))) == expected
    monkeypatch.setattr(corpus.corpus, "__file__", str(link / "__init__.py"))
    assert corpus.piece_key(path) == expected


def test_two_files_with_one_key_are_refused_before_anything_is_written(tmp_path):
    a, b = tmp_path / "one" / "movement3.mxl", tmp_path / "two" / "movement3.mxl"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("<score-partwise/>")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="would both be engraved as 'movement3.mxl'") as e:
        generate(str(out), num_pages=2, pieces=[str(a), str(b)], progress=False)
    assert str(a) in str(e.value) and str(b) in str(e.value)
    assert not list((out / "images").iterdir())
