"""Copies a run's metrics.json into the study's record with its per-item scores as strings of 0 and 1 (one line a
suite instead of one line an item), so a record stays short enough to read and to keep in git:

    python experiments/study/compact.py <run dir>/metrics.json <record dir>/metrics.json

`items(record)` turns them back into lists; analyze.py, mended.py and path.py read both forms.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def compact(metrics: dict) -> dict:
    out = dict(metrics)
    for side in ("trained", "base"):
        if isinstance(out.get(side), dict) and "correct" in out[side]:
            out[side] = {**out[side], "correct": {suite: "".join(str(int(c)) for c in cs)
                                                  for suite, cs in out[side]["correct"].items()}}
    return out


def items(correct: dict) -> dict[str, list[int]]:
    """suite -> 0/1 per item, from either form."""
    return {suite: [int(c) for c in cs] for suite, cs in correct.items()}


if __name__ == "__main__":
    src, dst = map(Path, sys.argv[1:3])
    from spot.rows import write_atomic

    write_atomic(dst, json.dumps(compact(json.loads(src.read_text())), indent=1) + "\n")
