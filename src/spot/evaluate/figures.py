"""The report's figures (PNG): the gain/forgetting trade-off, reward curves, and KL to the reference.

Curves arrive in long format (label, run, step, metric, value); runs sharing a label (seeds) are averaged
per step. A panel whose metric no run logged says so instead of staying blank.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402

REWARD_PANELS = (("train/rewards/chosen", "reward of y+ (chosen)"),
                 ("train/rewards/rejected", "reward of y- (rejected)"),
                 ("train/rewards/margins", "margin r+ - r-"),
                 ("train/reward_shift", "reward shift delta (BCO)"))
KL_PANELS = (("train/kl", "KL(ref || policy) per token, on y- (training batches)"),
             ("eval/kl/token", "KL(policy || ref) per token, on policy samples (callback)"))
FORGETTING_PANELS = (("eval/in_domain", "in-domain accuracy (callback)"),
                     ("eval/prior", "prior-task accuracy (callback)"))


def plot_tradeoff(rows: list[dict], out_dir: Path) -> dict[str, Path]:
    """In-domain gain against forgetting, one point per method row: up and to the left is better."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    points = [r for r in rows if r["method"] != "base" and r.get("delta_in_domain") is not None]
    for i, r in enumerate(points):
        x, y = 100 * (r.get("forgetting") or 0.0), 100 * r["delta_in_domain"]
        ax.scatter(x, y, s=40, color=f"C{i % 10}")
        ax.annotate(r["label"], (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("forgetting: base - trained on prior tasks (points)")
    ax.set_ylabel("in-domain gain over base (points)")
    ax.set_title("In-domain gain vs forgetting")
    if not points:
        ax.text(0.5, 0.5, "no runs with a base evaluation", ha="center", transform=ax.transAxes)
    return {"tradeoff.png": _save(fig, out_dir / "tradeoff.png")}


def _series(curves: list[dict], metric: str) -> dict[str, tuple[list[int], list[float]]]:
    """{label: (steps, values)} for one metric, averaged over a label's runs at each step."""
    acc: dict[str, dict[int, list[float]]] = {}
    for c in curves:
        if c["metric"] == metric:
            acc.setdefault(c["label"], {}).setdefault(int(c["step"]), []).append(float(c["value"]))
    return {label: (sorted(s), [sum(s[k]) / len(s[k]) for k in sorted(s)]) for label, s in acc.items()}


def _panels(curves: list[dict], panels, path: Path, ncols: int = 2):
    # one colour per label in every panel and figure: labels keep the report's row order
    colours = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(c["label"] for c in curves))}
    # panels no run logged are left out (an empty frame reads as a broken figure); one stays to say so
    panels = [p for p in panels if _series(curves, p[0])] or list(panels)[:1]
    ncols = min(ncols, len(panels))
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.6 * nrows), squeeze=False)
    for ax, (metric, title) in zip(axes.flat, panels):
        series = _series(curves, metric)
        for label, (steps, values) in series.items():
            ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=label, color=colours[label])
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        if series:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, f"no run logged {metric}", ha="center", transform=ax.transAxes, fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    return _save(fig, path)


def plot_curves(curves: list[dict], out_dir: Path) -> dict[str, Path]:
    """rewards.png, kl.png, and forgetting_curves.png when the evaluation callback logged anything."""
    out = {"rewards.png": _panels(curves, REWARD_PANELS, out_dir / "rewards.png"),
           "kl.png": _panels(curves, KL_PANELS, out_dir / "kl.png")}
    if any(c["metric"].startswith("eval/") for c in curves):
        out["forgetting_curves.png"] = _panels(curves, FORGETTING_PANELS, out_dir / "forgetting_curves.png")
    return out


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
