"""Choose each method's learning rate on the toy validation split, never on the test set.

    python train.py -m method=dpo,bce,bco pref_lr=3e-5,1e-4,3e-4,1e-3 "eval=[toy,toy_val]" \
        experiment_name=toy_lr hydra.sweep.dir=multirun/toy_lr_pref
    python train.py -m method=sft,rft,sft_plus sft_lr=1.5e-4,5e-4,1.5e-3,5e-3 "eval=[toy,toy_val]" \
        experiment_name=toy_lr hydra.sweep.dir=multirun/toy_lr_sft
    python experiments/select_lr.py multirun/toy_lr_pref multirun/toy_lr_sft

Every run evaluates the validation problems (`toy_val_in_domain`, a stream of its own) and the test suites. For
each method the run with the best validation in-domain accuracy is chosen (ties: the smaller learning rate);
its test numbers are then read as they are. The last line printed is the report.py command for the chosen runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def job_order(path: Path) -> tuple[int, str]:
    """Hydra's job number leads a sweep's run directory (`10_bco`): 2_ before 10_, unlike a plain string sort."""
    num = path.parent.name.split("_")[0]
    return (int(num) if num.isdigit() else 0, str(path))


def read_runs(sweeps: list[Path]) -> list[dict]:
    runs = []
    for sweep in sweeps:
        for path in sorted(sweep.glob("*/metrics.json"), key=job_order):
            m = json.loads(path.read_text())
            val = m["trained"]["groups"].get("val")
            if val is None:
                sys.exit(f"error: {path} has no validation score: run the sweep with 'eval=[toy,toy_val]'")
            runs.append({"dir": path.parent, "method": m["run"]["method"], "lr": m["run"]["lr"], "val": val,
                         "base_val": m["base"]["groups"]["val"], "test": m["trained"]["groups"]["in_domain"],
                         "prior": m["trained"]["groups"]["prior"], "forgetting": m["delta"]["forgetting"]})
    if not runs:
        sys.exit(f"error: no */metrics.json under {', '.join(map(str, sweeps))}")
    return runs


def best_rate(runs: list[dict]) -> dict:
    """The run with the best validation accuracy, ties to the smaller learning rate (the selection rule here and
    in experiments/study)."""
    return max(runs, key=lambda r: (r["val"], -r["lr"]))


def grid_edge(rates: list[float], lr: float) -> str | None:
    """"smallest" or "largest" when `lr` sits at that end of a grid of two or more rates, else None."""
    rates = sorted(rates)
    if len(rates) < 2 or rates[0] < lr < rates[-1]:
        return None
    return "smallest" if lr == rates[0] else "largest"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweeps", nargs="+", type=Path)
    a = ap.parse_args()
    runs = read_runs(a.sweeps)
    print(f"base: validation in-domain {100 * runs[0]['base_val']:.1f}")
    print("| method | lr | val in-domain | test in-domain | prior | forgetting | chosen |")
    print("|---|---|---|---|---|---|---|")
    chosen = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = sorted((r for r in runs if r["method"] == method), key=lambda r: r["lr"])
        chosen[method] = best_rate(mine)
        for r in mine:
            print(f"| {method} | {r['lr']:g} | {100 * r['val']:.1f} | {100 * r['test']:.1f} | "
                  f"{100 * r['prior']:.1f} | {100 * r['forgetting']:+.1f} | {'yes' if r is chosen[method] else ''} |")
    for method, r in chosen.items():
        side = grid_edge(list({x["lr"] for x in runs if x["method"] == method}), r["lr"])
        if side:
            print(f"note: {method} chose the {side} rate of its grid ({r['lr']:g}); extend the grid past it")
    print("\npython report.py " + " ".join(str(r["dir"]) for r in chosen.values()) + " --out <dir>")

if __name__ == "__main__":
    main()
