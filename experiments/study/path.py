"""B1's KL path (PROTOCOL.md, 2026-12-06 section): in-domain and prior against the KL to the reference along each
run, from the records `rerun.sh b1path` leaves in experiments/study/b1path/<job>/.

    python experiments/study/path.py      # writes b1path/curves.csv, b1path/path.md and b1path/path.png

A run's path is its evaluation before the first step and every 16 steps (eval_log.jsonl: 64 in-domain, 32 OOD and
32 prior items apart from the test items, the KL to the reference on 32 prompts), with the held-out chosen and
rejected rewards at each epoch's end (train_log.jsonl); its end point is the full test evaluation (metrics.json).
Points are means over the seeds run, bars one standard error over seeds.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyze import mean_se  # noqa: E402

STUDY = Path(__file__).resolve().parent
PAIRWISE = ("dpo", "bce", "bco")
ORDER = ("sft_plus", "dpo", "bce", "bco")
LABELS = {"sft_plus": "SFT+", "dpo": "DPO", "bce": "BCE", "bco": "BCO (SPoT)"}
RATES = (3e-5, 5e-5)  # the protocol's two rates
MARGIN = 0.02  # the protocol's 2 points: the three objectives coincide when their end points are this close


def read(root: Path) -> list[dict]:
    runs = []
    for path in sorted(root.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        r = m["run"]
        points = [json.loads(line) for line in (path.parent / "eval_log.jsonl").read_text().splitlines()]
        rewards = [json.loads(line) for line in (path.parent / "train_log.jsonl").read_text().splitlines()]
        rewards = [x for x in rewards if "val/rewards/chosen" in x]
        runs.append({"method": r["method"], "lr": r["lr"], "seed": r["seed"], "points": points, "rewards": rewards,
                     "end": m["trained"]["groups"], "base": m["base"]["groups"], "kl_end": m["train"].get("val/kl")})
    return runs


def curves(runs: list[dict]) -> list[dict]:
    rows = []
    for r in runs:
        for p in r["points"]:
            rows.append({"method": r["method"], "lr": r["lr"], "seed": r["seed"], "step": p["step"],
                         "in_domain": p.get("eval/in_domain"), "ood": p.get("eval/ood"), "prior": p.get("eval/prior"),
                         "kl_token": p.get("eval/kl/token")})
        for x in r["rewards"]:
            rows.append({"method": r["method"], "lr": r["lr"], "seed": r["seed"], "step": x["step"],
                         "chosen": x["val/rewards/chosen"], "rejected": x["val/rewards/rejected"],
                         "val_kl": x.get("val/kl")})
    return rows


def table(runs: list[dict]) -> tuple[str, dict]:
    base = runs[0]["base"]
    lines = [f"Base (full test): in-domain {100 * base['in_domain']:.1f}, prior {100 * base['prior']:.1f}.", "",
             "| method | lr | seeds | in-domain (test) | prior (test) | held-out KL | chosen reward | rejected reward"
             " |",
             "|---|---|---|---|---|---|---|---|"]
    ends: dict[tuple, float] = {}
    for lr in sorted({r["lr"] for r in runs}):
        for method in ORDER:
            mine = [r for r in runs if r["method"] == method and r["lr"] == lr]
            if not mine:
                continue

            def cell(xs, scale=100.0, fmt="{:.1f}"):
                xs = [x for x in xs if x is not None]
                if not xs:
                    return "-"
                m, se = mean_se(xs)
                spread = " ± " + fmt.replace("+", "").format(scale * se) if se is not None else ""
                return fmt.format(scale * m) + spread

            last = [r["rewards"][-1] if r["rewards"] else {} for r in mine]
            ends[(method, lr)] = mean_se([r["end"]["in_domain"] for r in mine])[0]
            ind, prior = cell([r["end"]["in_domain"] for r in mine]), cell([r["end"]["prior"] for r in mine])
            lines.append(f"| {LABELS[method]} | {lr:g} | {len(mine)} | {ind} | {prior} | "
                         f"{cell([r['kl_end'] for r in mine], 1, '{:.3f}')} | "
                         f"{cell([x.get('val/rewards/chosen') for x in last], 1, '{:+.3f}')} | "
                         f"{cell([x.get('val/rewards/rejected') for x in last], 1, '{:+.3f}')} |")
    verdict = coincide(ends, base["in_domain"], list(RATES))
    return "\n".join(lines + ["", verdict["text"]]), verdict


def coincide(ends: dict, base: float, rates: list[float]) -> dict:
    """The protocol's rule: DPO, BCE and BCO coincide when, at both rates, their end points (full test in-domain,
    mean over seeds) differ pairwise by less than 2 points, or all three end below the base."""
    per_rate = {}
    for lr in rates:
        xs = [ends.get((m, lr)) for m in PAIRWISE]
        if None in xs:
            per_rate[lr] = "not run"
            continue
        spread = max(xs) - min(xs)
        per_rate[lr] = ("all below the base" if max(xs) < base else f"within {100 * spread:.1f} points"
                        if spread < MARGIN else f"apart by {100 * spread:.1f} points")
    settled = len(rates) == 2 and all(v != "not run" for v in per_rate.values())
    same = settled and all(v.startswith(("all below", "within")) for v in per_rate.values())
    text = ("The three pairwise objectives, by the protocol's rule: " +
            "; ".join(f"{lr:g}: {v}" for lr, v in per_rate.items()) + ". Verdict: " +
            ("they coincide." if same else "they part ways." if settled else "not settled (a rate not run)."))
    return {"per_rate": per_rate, "coincide": same if settled else None, "text": text}


def figure(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = sorted({r["lr"] for r in runs})
    fig, axes = plt.subplots(2, len(rates), figsize=(5.2 * len(rates), 7.6), squeeze=False)
    for col, lr in enumerate(rates):
        for method in ORDER:
            mine = [r for r in runs if r["method"] == method and r["lr"] == lr]
            if not mine:
                continue
            steps = sorted({p["step"] for r in mine for p in r["points"]})
            for row, key in enumerate(("eval/in_domain", "eval/prior")):
                xs, ys, xe, ye = [], [], [], []
                for step in steps:
                    at = [p for r in mine for p in r["points"] if p["step"] == step]
                    (kx, ks), (vy, vs) = mean_se([p["eval/kl/token"] for p in at]), mean_se([p[key] for p in at])
                    xs.append(kx), ys.append(100 * vy), xe.append(ks or 0), ye.append(100 * (vs or 0))
                axes[row][col].errorbar(xs, ys, xerr=xe, yerr=ye, marker="o", capsize=2, label=LABELS[method])
        for row, what in enumerate(("in-domain (64 items)", "prior (32 items a task)")):
            ax = axes[row][col]
            ax.set_title(f"B1, lr {lr:g}: {what}", fontsize=10)
            ax.set_xlabel("KL to the reference (per token, 32 prompts)")
            ax.set_ylabel("accuracy (%)")
            if row == 1:  # the prior moves by an item or two: a fixed scale keeps one item from looking like a fall
                ax.set_ylim(80, 100)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path, nargs="?", default=STUDY / "b1path")
    a = ap.parse_args()
    runs = read(a.root)
    if not runs:
        raise SystemExit(f"error: no */metrics.json under {a.root}: run `bash experiments/study/rerun.sh b1path`")
    rows = curves(runs)
    keys = ["method", "lr", "seed", "step", "in_domain", "ood", "prior", "kl_token", "chosen", "rejected", "val_kl"]
    with open(a.root / "curves.csv", "w", newline="") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    text, verdict = table(runs)
    (a.root / "path.md").write_text(text + "\n")
    (a.root / "path.json").write_text(json.dumps(verdict, indent=1) + "\n")
    figure(runs, a.root / "path.png")
    print(text)


if __name__ == "__main__":
    main()
