"""The study's figure: in-domain gain against forgetting, one panel per base, error bars over seeds.

    python experiments/study/figure.py experiments/study/{b0,v0,b1}/analysis.json \
        --out experiments/study/gain_vs_forgetting.png

Each input is what `analyze.py --json` (run_base.sh) wrote for one base. A method's point is its mean over the
seeds at its chosen rate; the bars are one standard error over seeds (none where one seed was run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from spot.evaluate.report import METHOD_ORDER

LABELS = {"sft": "SFT", "rft": "RFT", "sft_plus": "SFT+", "dpo": "DPO", "bce": "BCE", "bco": "BCO (SPoT)"}
COLOURS = {m: f"C{i}" for i, m in enumerate(METHOD_ORDER)}  # a method keeps its colour in every panel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("analyses", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("experiments/study/gain_vs_forgetting.png"))
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(a.analyses), figsize=(5.2 * len(a.analyses), 4.2), squeeze=False)
    for ax, path in zip(axes[0], a.analyses):
        result = json.loads(path.read_text())
        base = result["base"]
        for method, row in result["rows"].items():
            if not row.get("in_domain") or not row.get("forgetting"):
                continue
            (ind, ind_se), (fg, fg_se) = row["in_domain"], row["forgetting"]
            gain = 100 * (ind - base["in_domain"])
            ax.errorbar(100 * fg, gain, xerr=100 * fg_se if fg_se else None, yerr=100 * ind_se if ind_se else None,
                        fmt="o", capsize=3, color=COLOURS.get(method, "black"),
                        label=f"{LABELS.get(method, method)} ({len(row['seeds'])} seeds)")
        ax.axhline(0, color="grey", lw=0.8)
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_title(f"{path.parent.name}: base in-domain {100 * base['in_domain']:.1f}, prior "
                     f"{100 * base['prior']:.1f}", fontsize=10)
        ax.set_xlabel("forgetting (prior accuracy lost, points)")
        ax.set_ylabel("in-domain gain (points)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.out, dpi=120)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
