"""One post-training run from plain objects: evaluate the base, fit, evaluate the result, write metrics.json.

`train.py` builds the objects from the Hydra config and calls `fit_and_evaluate`; tests and scripts can call it
directly. Everything a run measured goes to `<out_dir>/metrics.json`, so that sweeps and reports read every run
the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import lightning as L

from spot.evaluate.runner import compare, evaluate_suites, group_means
from spot.evaluate.suites import Suite
from spot.evaluate.table import format_table
from spot.generation import Sampling
from spot.module import SPoTModule

log = logging.getLogger(__name__)


def write_json_atomic(path: Path, obj) -> None:
    """Write to a temporary file then rename, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        json.dump(obj, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def base_cache_key(model_dir: str, suites: list[Suite], sampling: Sampling, seed: int) -> str | None:
    """A key that changes with the weights, the suites' items and the decoding: None for hub models."""
    weights = sorted(Path(model_dir).glob("*.safetensors")) if Path(model_dir).is_dir() else []
    if not weights:
        return None
    h = hashlib.sha256()
    for w in weights:
        h.update(w.read_bytes())
    for s in suites:
        h.update(json.dumps([s.name, s.max_new_tokens, s.n_samples, s.prompts, s.answers]).encode())
    h.update(json.dumps([repr(sampling), seed]).encode())
    return h.hexdigest()[:20]


def evaluate_base(module: SPoTModule, tokenizer, suites, sampling, seed, cache_file: Path | None) -> dict:
    if cache_file is not None and cache_file.exists():
        log.info("base scores from cache %s", cache_file)
        saved = json.loads(cache_file.read_text())
        # "seconds" is what this run spent; the run that filled the cache spent "computed_seconds"
        return {**saved, "seconds": 0.0, "computed_seconds": saved["seconds"], "cached": True}
    t0 = time.time()
    acc, records = evaluate_suites(module.policy, tokenizer, suites, sampling, seed=seed)
    result = {"suites": acc, "groups": group_means(acc, suites), "correct": correctness(records),
              "seconds": round(time.time() - t0, 1)}
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cache_file, result)
    return {**result, "cached": False}


def correctness(records: list[dict]) -> dict[str, list[int]]:
    """Per-suite 0/1 outcomes in item order, kept so that base and trained can be compared item by item."""
    out: dict[str, list[int]] = {}
    for r in records:
        out.setdefault(r["suite"], []).append(int(r["correct"]))
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


class StepLog(L.Callback):
    """Appends the logged train/val metrics to `<run>/train_log.jsonl`, one object per logging step.

    Whatever the chosen logger (W&B's files are binary), reports and notebooks read curves from here.
    """

    def __init__(self, path: Path):
        self.path, self.last_step = path, -1

    def _write(self, trainer: L.Trainer, prefix: str) -> None:
        if not trainer.is_global_zero:
            return
        row = {k: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith(prefix) and not k.endswith("_bar")}
        if row:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch, **row}) + "\n")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # micro-batches of one accumulated step share it: write once
        if step != self.last_step and step % trainer.log_every_n_steps == 0:
            self.last_step = step
            self._write(trainer, "train/")

    def on_validation_end(self, trainer, pl_module) -> None:
        self._write(trainer, "val/")


def fit_and_evaluate(module: SPoTModule, datamodule: L.LightningDataModule, trainer: L.Trainer, tokenizer,
                     suites: list[Suite], sampling: Sampling, out_dir: Path, run_info: dict,
                     base_cache: Path | None = None, ckpt_path: str | None = None, seed: int = 0,
                     save_policy: bool = True) -> dict:
    """Returns (and writes) the run's metrics: base and trained accuracies, deltas, forgetting, timings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    base = evaluate_base(module, tokenizer, suites, sampling, seed, base_cache)

    t0 = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.time() - t0
    if not trainer.is_global_zero:
        return {}

    t0 = time.time()
    acc, records = evaluate_suites(module.policy, tokenizer, suites, sampling, seed=seed)
    trained = {"suites": acc, "groups": group_means(acc, suites), "correct": correctness(records),
               "seconds": round(time.time() - t0, 1)}
    with (out_dir / "samples.jsonl.tmp").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    os.replace(out_dir / "samples.jsonl.tmp", out_dir / "samples.jsonl")
    if save_policy:
        module.policy.save_pretrained(out_dir / "policy")
        tokenizer.save_pretrained(out_dir / "policy")

    train_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_bar")}
    metrics = {
        "run": run_info,
        "n": {s.name: len(s.prompts) for s in suites},
        "base": base,
        "trained": trained,
        "delta": compare(base["groups"], trained["groups"]),
        "paired": paired_deltas(base["correct"], trained["correct"]),
        "train": train_metrics,
        "steps": trainer.global_step,
        "seconds": {"base_eval": base["seconds"], "fit": round(fit_seconds, 1), "eval": trained["seconds"]},
    }
    write_json_atomic(out_dir / "metrics.json", metrics)
    _log_summary(trainer, metrics)
    print(format_table([("Base", base["groups"]), (run_info.get("method", "trained"), trained["groups"])]))
    return metrics


def _log_summary(trainer: L.Trainer, metrics: dict) -> None:
    """Suite scores under names shared by every method, so dashboards line runs up side by side."""
    flat = {f"eval/{k}/accuracy": v for k, v in metrics["trained"]["suites"].items()}
    flat |= {f"eval/{k}": v for k, v in metrics["trained"]["groups"].items()}
    flat |= {f"base/{k}": v for k, v in metrics["base"]["groups"].items()}
    flat |= {f"eval/{k}": v for k, v in metrics["delta"].items()}
    for logger in trainer.loggers:
        logger.log_metrics(flat, step=trainer.global_step)
