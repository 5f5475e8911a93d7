"""The paper-style table and figures for a sweep or a set of runs, from their metrics.json and curves.

    python train.py -m experiment=toy_table && python report.py multirun/<date>/<time>
    python report.py outputs/<date>/<time>_bco outputs/<date>/<time>_sft --out reports/bco_vs_sft

Writes into <sweep dir>/report/ (or --out): table.md and table.csv (Base + one row per method: in-domain,
OOD, prior, in-domain gain, forgetting), curves.csv, runs.json, and the figures tradeoff.png (in-domain gain
vs forgetting), rewards.png (rewards and reward shift over steps), kl.png (KL to the reference over steps)
and, when runs used the evaluation callback, forgetting_curves.png. notebooks/tradeoff.ipynb reads them.
With --wandb offline|online the same comparison is logged as one W&B run (a Table of the rows and a chart of
in-domain gain against forgetting); a train.py sweep does this by itself at its end (conf/train.yaml
hydra.callbacks) when it logs to W&B.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, help="a sweep directory, or run directories")
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default: <the one path given>/report, else ./report)")
    parser.add_argument("--wandb", choices=("offline", "online"), default=None,
                        help="also log the comparison (a W&B Table and a gain-vs-forgetting chart) as one W&B run")
    parser.add_argument("--wandb-project", default="spot")
    args = parser.parse_args(argv)

    from spot.evaluate.report import ReportError, find_runs, format_markdown, push_to_wandb, table_rows, write_report

    try:
        runs = find_runs(args.paths)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = args.out or (args.paths[0] / "report" if len(args.paths) == 1 else Path("report"))
    written = write_report(runs, out)
    print(format_markdown(table_rows(runs)))
    print(f"\n{len(runs)} runs; wrote " + ", ".join(str(p) for p in written.values()))
    if args.wandb:
        run_dir = push_to_wandb(table_rows(runs), out, project=args.wandb_project, mode=args.wandb)
        print(f"W&B comparison run: {run_dir}" + (f" (upload: wandb sync {run_dir})" if args.wandb == "offline"
                                                  else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
