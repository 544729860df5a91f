"""Objects per class in each split of a DeepScoresV2-layout folder, as a Markdown table.

Run: `python benchmarks/corpus_counts.py [data/manual/synthetic]` (the engraved corpus that
`python run.py` writes); the model card's table comes from it.
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

from dwd_jax import classes
from dwd_jax.data import deepscores_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="data/manual/synthetic")
    parser.add_argument("--enough", type=int, default=200, help="training objects a class needs")
    args = parser.parse_args()
    files = deepscores_json.annotation_files(Path(args.folder))
    splits = [s for s in ("train", "validation", "test") if s in files] or sorted(files)
    counts = {s: collections.Counter() for s in splits}
    for split in splits:
        for file in files[split]:
            for page in deepscores_json.load_pages(file):
                counts[split].update(page.labels.tolist())
    present = set().union(*counts.values())
    train = counts[splits[0]]
    enough = sum(train[label] >= args.enough for label in present)
    names = classes.DEEPSCORES_CLASSES
    print(
        f"{len(present)} of {len(names)} DeepScoresV2 classes occur; {enough} have at least "
        f"{args.enough} {splits[0]} objects.\n"
    )
    print("| class | " + " | ".join(splits) + " |")
    print("|---|" + "---:|" * len(splits))
    for label in sorted(present, key=lambda label: (-train[label], names[label])):
        print(f"| {names[label]} | " + " | ".join(str(counts[s][label]) for s in splits) + " |")


if __name__ == "__main__":
    main()
