"""The package's dependencies point one way: data -> modeling -> decoding -> omr -> detection
-> eval -> training -> workflow; nothing imports a later stage, and the engraver is reached only
from data generation."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dwd_jax"

# Stage of every package and top-level module (a package's modules share its stage); a
# module may import only modules of its own stage or an earlier one.
STAGES = (
    ("classes", "boxes", "image", "paths", "hosts"),  # Shared by every stage.
    ("data", "engrave"),  # DeepScores records, degradations, the input pipeline; engraving.
    ("modeling", "checkpoint"),  # The network, its targets and losses; saved train states.
    ("decoding",),  # Outputs -> padded detections.
    ("omr",),  # Post-processing on the ink.
    ("pretrained", "detection", "visualize"),  # Pages -> final detections; pictures.
    ("eval",),  # Metrics, the evaluation protocol, the robustness set.
    ("training",),  # The training loop (scores validation pages as it goes).
    ("workflow", "cli"),  # The commands of `dwd-jax` and run.py.
)
STAGE = {name: i for i, names in enumerate(STAGES) for name in names}


def _unit(module: str) -> str:
    """`dwd_jax.omr.ink` -> `omr`; `dwd_jax.boxes` -> `boxes`."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """The dwd_jax modules a file imports (`from dwd_jax import x` counts as dwd_jax.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("dwd_jax.")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dwd_jax"):
            if node.module == "dwd_jax":
                found |= {f"dwd_jax.{a.name}" for a in node.names}
            else:
                found.add(node.module)
    return found


def _graph() -> dict[str, set[str]]:
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(p for p in rel.parts if p != "__init__")
        if module != "dwd_jax":
            graph[module] = _imports(path)
    return graph


def test_every_module_has_a_stage():
    assert {_unit(m) for m in _graph()} == set(STAGE)


def test_no_module_imports_a_later_stage():
    backwards = [
        f"{m} (stage {STAGE[_unit(m)]}) imports {i} (stage {STAGE[_unit(i)]})"
        for m, imports in _graph().items()
        for i in imports
        if STAGE[_unit(i)] > STAGE[_unit(m)]
    ]
    assert not backwards, "\n".join(backwards)


def test_the_engraver_is_reached_only_from_data_generation():
    users = {
        m for m, imports in _graph().items()
        if _unit(m) != "engrave" and any(_unit(i) == "engrave" for i in imports)
    }
    assert users == {"dwd_jax.workflow"}
