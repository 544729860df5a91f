"""Generated music (dwd_jax.engrave.compose): seeded, holding what the corpus lacks, and
engraved into the corpus at its configured share."""

from __future__ import annotations

import json
import os
import pathlib
import re

from music21 import dynamics, layout

from dwd_jax.engrave import compose, corpus, generate
from dwd_jax.engrave.generate import GENERATED, _with_generated


def _xml(seed: int, folder: pathlib.Path) -> str:
    path = compose.write(seed, str(folder / f"{seed}.musicxml"))
    # music21 stamps the date it wrote the file and names parts by random hashes; neither
    # reaches the engraved page.
    text = re.sub(r"<encoding-date>.*</encoding-date>", "", pathlib.Path(path).read_text())
    return re.sub(r"P[0-9a-f]{32}", "P", text)


def test_a_seed_gives_one_score(tmp_path):
    assert _xml(3, tmp_path) == _xml(3, tmp_path)
    assert _xml(3, tmp_path) != _xml(4, tmp_path)


def test_time_signatures_hold_every_digit():
    digits = set("".join(t for t in compose.TIME_SIGNATURES if "/" in t))
    assert digits >= set("0123456789") - {"/"}


def test_scores_hold_what_the_corpus_lacks():
    found = set()
    for seed in range(6):
        score = compose.compose(seed)
        flat = score.flatten()
        if flat.getElementsByClass(dynamics.Dynamic):
            found.add("dynamic")
        for s in score.spannerBundle:
            found.add(type(s).__name__)
        for group in score.getElementsByClass(layout.StaffGroup):
            found.add(f"group:{group.symbol}")
        for n in flat.notes:
            found.update(type(a).__name__ for a in n.articulations)
            if n.duration.isGrace:
                found.add("grace")
            if n.duration.tuplets:
                found.add("tuplet")
    assert {
        "dynamic", "Crescendo", "Diminuendo", "Slur", "Accent", "Tenuto", "grace", "tuplet",
        "group:brace",
    } <= found


def test_generated_pieces_take_their_share_of_every_prefix():
    order = [f"p{i}" for i in range(12)]
    assert _with_generated(order, "g", 0, 0.0) == order
    mixed = _with_generated(order, "g", 7, 0.25)
    generated = [p for p in mixed if os.path.basename(p).startswith(GENERATED)]
    assert [p for p in mixed if p.startswith("p")] == order  # The corpus order is kept.
    assert generated[:2] == ["g/generated-7-00000.musicxml", "g/generated-7-00001.musicxml"]
    for n in range(4, len(mixed) + 1, 4):  # Every fourth piece is generated.
        assert sum(os.path.basename(p).startswith(GENERATED) for p in mixed[:n]) == n // 4


def test_the_corpus_engraves_generated_pieces_with_their_classes(tmp_path):
    names = ("bach/bwv104.6.mxl", "ryansMammoth/DaysOfLangSyneJig.abc")
    pieces = [p for p in corpus.corpus_pieces() if p.endswith(names)]
    stats = generate(
        str(tmp_path), pieces=pieces, num_pages=4, seed=5, workers=2, progress=False,
        pages_per_piece=1, width_range=(1400, 1500), generated_share=0.5,
    )
    assert stats["pages"] == 4 and not stats["failed"] and not stats["crashed"]
    written = sorted(os.listdir(tmp_path / "generated"))
    assert written == ["generated-5-00000.musicxml", "generated-5-00001.musicxml"]
    names = set()
    for split in ("train", "validation", "test"):
        data = json.loads((tmp_path / f"deepscores_{split}.json").read_text())
        categories = {k: v["name"] for k, v in data["categories"].items()}
        names.update(categories[a["cat_id"][0]] for a in data["annotations"].values())
        names.update(
            "generated" for image in data["images"] if GENERATED in image["filename"]
        )
    assert "generated" in names
    # Generated pages bring dynamics and articulations the chorale and the jig do not have.
    assert any(n.startswith("dynamic") for n in names)
    assert any(n.startswith("artic") for n in names)
    settings = json.loads((tmp_path / "engrave_settings.json").read_text())
    assert settings["generated_share"] == 0.5
