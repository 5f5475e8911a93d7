"""One evaluation from plain objects: score a model (and its base) on suites, estimate the KL, write files.

`evaluate.py` builds the suites from the Hydra config and calls `evaluate_model`. The metrics.json it writes
has train.py's shape (run, n, base, trained, delta), so `report.py` reads the outputs of both the same way.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from spot.evaluate.checkpoints import ModelSource, load_for_eval, resolve_source
from spot.evaluate.forgetting import KLSettings, kl_to_reference, spread_prompts
from spot.evaluate.runner import SuiteResult, compare, evaluate_suite, suite_changes
from spot.evaluate.suites import Suite
from spot.generation import Sampling

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalPlan:
    model: str  # hub id, directory, train.py run directory or .ckpt
    base: str | None = "auto"  # "auto": the run's base model (none for plain models); a path; None: skip
    dtype: str = "auto"
    sampling: Sampling = field(default_factory=Sampling)
    seed: int = 0
    kl: KLSettings | None = field(default_factory=KLSettings)  # None: no KL estimate
    device: str = "auto"
    progress: bool = True


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def write_records(path: Path, results: list[SuiteResult], model: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for r in results:
            f.writelines(json.dumps({"model": model, **rec}) + "\n" for rec in r.records)
    os.replace(tmp, path)


def score_all(model, tokenizer, suites: list[Suite], plan: EvalPlan) -> tuple[list[SuiteResult], dict]:
    t0 = time.time()
    results = [evaluate_suite(model, tokenizer, s, plan.sampling, seed=plan.seed, progress=plan.progress)
               for s in suites]
    suites_acc = {r.name: r.accuracy for r in results}
    groups: dict[str, list[float]] = {}
    for r in results:
        groups.setdefault(r.group, []).append(r.accuracy)
    side = {"suites": suites_acc, "groups": {g: sum(v) / len(v) for g, v in groups.items()},
            "details": {r.name: r.summary() for r in results}, "seconds": round(time.time() - t0, 1)}
    return results, side


def run_info(source: ModelSource) -> dict:
    """What the evaluated model is: a train.py run's own description when there is one."""
    info = {"model": source.spec, "kind": source.kind, "base_model": source.base}
    if source.run_dir and (Path(source.run_dir) / "metrics.json").exists():
        info = {**json.loads((Path(source.run_dir) / "metrics.json").read_text()).get("run", {}), **info}
    info.setdefault("method", Path(source.run_dir or source.spec.rstrip("/")).name)
    return info


def evaluate_model(plan: EvalPlan, suites: list[Suite], out_dir: Path) -> dict:
    """Scores the model and, when there is one, its base; writes samples.jsonl, base_samples.jsonl and
    metrics.json into `out_dir` and returns the metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    explicit_base = plan.base if plan.base not in (None, "auto") else None
    source = resolve_source(plan.model, explicit_base)
    base_spec = source.base if plan.base == "auto" else plan.base
    device = pick_device(plan.device)
    model, tokenizer = load_for_eval(source, plan.dtype)
    model.to(device)
    results, trained = score_all(model, tokenizer, suites, plan)
    write_records(out_dir / "samples.jsonl", results, "trained")
    sampling = {k: v for k, v in asdict(plan.sampling).items() if k != "max_new_tokens"}  # per suite
    metrics = {"run": run_info(source), "n": {s.name: len(s.prompts) for s in suites},
               "n_samples": {r.name: r.n_samples for r in results}, "sampling": sampling,
               "seed": plan.seed, "trained": trained}
    if base_spec:
        base_model, _ = load_for_eval(resolve_source(base_spec), plan.dtype)
        base_model.to(device)
        base_results, base = score_all(base_model, tokenizer, suites, plan)
        write_records(out_dir / "base_samples.jsonl", base_results, "base")
        metrics["base"] = {**base, "model": base_spec}
        metrics["delta"] = compare(base["groups"], trained["groups"])
        metrics["delta_suites"] = suite_changes(base["suites"], trained["suites"])
        if plan.kl is not None and plan.kl.n_prompts > 0:
            prompts = spread_prompts([s.prompts for s in suites], plan.kl.n_prompts)
            metrics["kl"] = kl_to_reference(model, base_model, tokenizer, prompts, plan.kl, seed=plan.seed,
                                            progress=plan.progress)
        del base_model
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def summary_metrics(metrics: dict) -> dict[str, float]:
    """The flat names train.py logs too (eval/<suite>/accuracy, eval/<group>, base/<group>, eval/delta_*,
    eval/forgetting), plus eval/kl/*, so dashboards line up runs of every method and both entry points."""
    flat = {f"eval/{k}/accuracy": v for k, v in metrics["trained"]["suites"].items()}
    flat |= {f"eval/{k}": v for k, v in metrics["trained"]["groups"].items()}
    flat |= {f"base/{k}": v for k, v in metrics.get("base", {}).get("groups", {}).items()}
    flat |= {f"eval/{k}": v for k, v in metrics.get("delta", {}).items()}
    flat |= {f"eval/kl/{k}": v for k, v in metrics.get("kl", {}).items() if k in ("token", "sequence")}
    return flat


def log_to_wandb(metrics: dict, out_dir: Path, project: str, mode: str, group: str | None, tags: list[str],
                 config: dict) -> None:
    """One W&B run whose summary holds `summary_metrics`; offline by default (`wandb sync` uploads it)."""
    if mode == "disabled":
        return
    import wandb

    run = wandb.init(project=project, mode=mode, dir=str(out_dir), group=group, tags=tags, config=config,
                     job_type="evaluate", name=str(metrics["run"].get("method")))
    run.summary.update(summary_metrics(metrics))
    run.finish()
