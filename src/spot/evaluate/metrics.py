"""metrics.json: assembled by one function and written by one writer, for train.py and evaluate.py alike.

    {"run": {...}, "n": {suite: questions}, "n_samples": {suite: N}, "sampling": {...}, "seed": 0,
     "trained": {suites, groups, details, correct, seconds}, "base": {... same, "model", "cached"},
     "delta": {"delta_<group>", "forgetting"}, "delta_suites": {...}, "paired": {suite: {delta, se, n}},
     ... plus what the entry point adds ("kl" from evaluate.py; "train", "steps", "seconds" from train.py)}

A run that scored no suite writes no score fields at all (no zeros that look like results) and says so in
"note". `summary_metrics` flattens a metrics dict into the names every dashboard uses.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from spot.evaluate.suites import Suite
from spot.generation import Sampling
from spot.rows import write_atomic, write_jsonl

NO_SUITES = "no suites were selected (choose them with eval=[gsm8k,math500,...]); nothing was scored"


def compare(base: dict[str, float], trained: dict[str, float]) -> dict[str, float]:
    """Trained minus base for every group, plus forgetting = base minus trained on `prior`."""
    out = {f"delta_{g}": trained[g] - base[g] for g in base if g in trained}
    if "prior" in base and "prior" in trained:
        out["forgetting"] = base["prior"] - trained["prior"]
    return out


def paired_deltas(base: dict[str, list[int]], trained: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Trained minus base accuracy per suite, with the standard error of that difference.

    Both models answer the same items, so the noise is that of the mean per-item difference d_i (a paired
    comparison): se = std(d) / sqrt(n). A gain is beyond sampling noise when it exceeds about 2 se.
    """
    out = {}
    for name in base.keys() & trained.keys():
        d = [t - b for b, t in zip(base[name], trained[name], strict=True)]
        n = len(d)
        mean = sum(d) / n
        var = sum((x - mean) ** 2 for x in d) / max(1, n - 1)
        out[name] = {"delta": mean, "se": (var / n) ** 0.5, "n": n}
    return out


def assemble(run: dict, suites: list[Suite], sampling: Sampling, seed: int, trained: dict | None,
             base: dict | None = None, **extra) -> dict:
    """The metrics dict. `trained` and `base` are `Scores.as_dict()` (base may come from a cache)."""
    metrics: dict = {"run": run, "sampling": {k: v for k, v in asdict(sampling).items() if k != "max_new_tokens"},
                     "seed": seed}
    if not suites or trained is None:
        return {**metrics, "note": NO_SUITES, **extra}
    metrics |= {"n": {s.name: len(s.prompts) for s in suites},
                "n_samples": {name: d["n_samples"] for name, d in trained["details"].items()}, "trained": trained}
    if base is not None:
        metrics |= {"base": base, "delta": compare(base["groups"], trained["groups"]),
                    "delta_suites": {k: v - base["suites"][k] for k, v in trained["suites"].items()
                                     if k in base["suites"]},
                    "paired": paired_deltas(base.get("correct", {}), trained["correct"])}
    return {**metrics, **extra}


def write_metrics(out_dir: Path, metrics: dict) -> Path:
    write_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return out_dir / "metrics.json"


def write_samples(path: Path, records: list[dict], model: str) -> None:
    """Every completion with its verdict, one object a line; `model` says whose ("base" or "trained")."""
    write_jsonl(path, ({"model": model, **rec} for rec in records))


def summary_metrics(metrics: dict) -> dict[str, float]:
    """eval/<suite>/accuracy, eval/<group>, base/<group>, eval/delta_*, eval/forgetting and eval/kl/*: the
    names train.py and evaluate.py both log, so dashboards line up runs of every method."""
    trained = metrics.get("trained") or {}
    flat = {f"eval/{k}/accuracy": v for k, v in trained.get("suites", {}).items()}
    flat |= {f"eval/{k}": v for k, v in trained.get("groups", {}).items()}
    flat |= {f"base/{k}": v for k, v in (metrics.get("base") or {}).get("groups", {}).items()}
    flat |= {f"eval/{k}": v for k, v in metrics.get("delta", {}).items()}
    flat |= {f"eval/kl/{k}": v for k, v in metrics.get("kl", {}).items() if k in ("token", "sequence")}
    return flat
