"""Pair sets for the gamma and number-of-pairs ablations, derived from one unfiltered rectify run.

    python rectify.py gamma=1.0 out_dir=data/toy_all
    python experiments/derive_pairs.py data/toy_all/pairs.jsonl --gamma 0.4 --out data/toy_gamma0.4/pairs.jsonl
    python experiments/derive_pairs.py data/toy_all/pairs.jsonl --n 500 --out data/toy_n500/pairs.jsonl

Filtering the rows of a gamma=1.0 run by their recorded `r_lcs` keeps exactly the pairs a run with that gamma
keeps (rectify keeps a pair when R_LCS <= gamma), without sampling or asking the Oracle again. `--n` then takes
a seeded random subset, so a smaller set is not biased towards the first problems.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path


def derive(rows: list[dict], gamma: float | None = None, n: int | None = None, seed: int = 0) -> list[dict]:
    """Rows with r_lcs <= gamma, then n of them drawn without replacement (in their original order)."""
    if gamma is not None:
        missing = [i + 1 for i, r in enumerate(rows) if "r_lcs" not in r]
        if missing:
            raise ValueError(f"row {missing[0]} has no r_lcs: filter pairs written by rectify.py")
        rows = [r for r in rows if r["r_lcs"] <= gamma]
    if n is not None:
        if n > len(rows):
            raise ValueError(f"asked for {n} pairs but only {len(rows)} are left after filtering")
        keep = sorted(random.Random(seed).sample(range(len(rows)), n))
        rows = [rows[i] for i in keep]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("pairs", type=Path, help="pairs.jsonl written by rectify.py (ideally with gamma=1.0)")
    parser.add_argument("--gamma", type=float, default=None, help="keep pairs with R_LCS <= gamma")
    parser.add_argument("--n", type=int, default=None, help="keep a seeded random subset of this many pairs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if not args.pairs.exists():
        print(f"error: {args.pairs} does not exist; make it with: python rectify.py gamma=1.0 "
              f"out_dir={args.pairs.parent}", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in args.pairs.read_text().splitlines() if line.strip()]
    try:
        kept = derive(rows, args.gamma, args.n, args.seed)
    except ValueError as e:
        print(f"error: {args.pairs}: {e}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    print(f"{len(kept)} of {len(rows)} pairs (gamma {args.gamma}, n {args.n}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
