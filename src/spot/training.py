"""One post-training run from plain objects: score the base, fit, score the result, write metrics.json.

`train.py` builds the objects from the Hydra config and calls `train_and_evaluate`; tests and scripts can call
it directly. Scoring is `spot.evaluate.scoring.score_model`, the function evaluate.py uses, run by the
`RunScoring` callback at the two moments a training run can score on the device the strategy chose:

  - the base in `setup`: before any checkpoint is restored (a resumed run scores the base, not its restored
    weights) and before the strategy wraps the model; rank 0 moves the policy to its device and scores it;
  - the trained policy in `on_train_end`: still on its device (Lightning's teardown moves it to the CPU
    later); a ZeRO-3 policy is first gathered into one whole model on rank 0 (every rank takes part in the
    gather), then scored and saved there.

Both run on global rank 0 only. Why not sharded across ranks: with generation=hf a ZeRO-3 model cannot
generate on one rank while the others wait, and DDP or ZeRO-2 ranks would each hold a whole policy for it;
at paper scale the scoring belongs to an inference engine (generation=vllm: rank 0 saves the policy, frees
its memory and scores the saved copy on its GPU). The other ranks wait at the strategy's next collective, and
keep their GPUs: the full paper evaluation of a trained policy is evaluate.py with generation=vllm and
generation.options.data_parallel_size=8 after training.

Everything a run measured goes to `<out_dir>/metrics.json` (spot.evaluate.metrics), so sweeps and reports
read every run the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import lightning as L
import torch

from spot.chat import ChatFormat
from spot.engines import HF, EngineSpec, Weights
from spot.errors import ConfigError
from spot.evaluate.metrics import assemble, summary_metrics, write_metrics, write_samples
from spot.evaluate.scoring import Scores, score_model
from spot.evaluate.suites import Suite
from spot.evaluate.table import describe_scoring, format_table
from spot.generation import Sampling
from spot.models import PolicySaver, weights_key
from spot.module import SPoTModule
from spot.progress import Progress, on_terminal
from spot.rows import write_atomic
from spot.speed.deepspeed import consolidate_policy

log = logging.getLogger(__name__)


def base_cache_key(model_path: str, suites: list[Suite], sampling: Sampling, chat: ChatFormat, seed: int,
                   model_config=None, scored_by: dict | None = None) -> str | None:
    """A key that changes with the weights (spot.models.weights_key: file metadata, or the hub commit), the
    suites' items, the prompt format, the decoding and `scored_by` (the engine and its options, the dtype the
    weights are scored in, the trainer's precision: a base scored by hf in bf16 is not the one vllm_cpu scores in
    fp32, and forgetting measured across the two would be partly the engine's); None when the weights cannot be
    identified."""
    weights = weights_key(model_path, model_config)
    if weights is None:
        return None
    h = hashlib.sha256(weights.encode())
    for s in suites:
        h.update(json.dumps([s.name, s.max_new_tokens, s.n_samples, s.template, s.prompts, s.answers]).encode())
    h.update(json.dumps([repr(sampling), chat.enable_thinking, chat.template, seed, scored_by or {}],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


class RunScoring(L.Callback):
    """Scores the base policy before training and the trained one after it (see the module docstring), and
    saves the trained policy. Results are in `self.base` and `self.trained` (`Scores.as_dict()`), the
    trained samples in `self.records`; all stay None on ranks other than 0, and when no suite is selected.

    With an engine that loads from disk (generation=vllm or server) the base is scored from `base_model` (its
    path) and the trained policy from `save_dir` once it is saved there, after the policy has left the GPU."""

    def __init__(self, chat: ChatFormat, suites: list[Suite], sampling: Sampling, seed: int = 0,
                 base_cache: Path | None = None, save: PolicySaver | None = None, progress: bool = True,
                 engine: EngineSpec = HF, base_model: str | None = None):
        if engine.loads_from_disk and suites and (save is None or base_model is None):
            raise ConfigError(f"generation={engine.name} scores models from disk: it needs save_policy=true")
        if engine.loads_from_disk and suites and not save.merge:
            raise ConfigError(f"generation={engine.name} scores a saved full model: with LoRA it needs "
                              "model.lora.merge=true")
        self.chat, self.suites, self.sampling, self.seed = chat, suites, sampling, seed
        self.base_cache, self.save, self.progress = base_cache, save, progress
        self.save_dir = save.dir if save else None
        self.engine, self.base_model = engine, base_model
        self.base = self.trained = self.records = None

    def _score(self, weights: Weights) -> Scores:
        engine = self.engine.open(weights, self.chat.tokenizer)
        try:
            return score_model(engine, self.chat, self.suites, self.sampling, seed=self.seed, progress=self.progress)
        finally:
            engine.close()

    def setup(self, trainer: L.Trainer, pl_module: SPoTModule, stage: str) -> None:
        if stage != "fit" or not self.suites or not trainer.is_global_zero:
            return
        if self.base_cache is not None and self.base_cache.exists():
            log.info("base scores from cache %s", self.base_cache)
            saved = json.loads(self.base_cache.read_text())
            # "seconds" is what this run spent; the run that filled the cache spent "computed_seconds"
            self.base = {**saved, "seconds": 0.0, "computed_seconds": saved["seconds"], "cached": True}
            return
        scores = self._score(Weights(lambda: pl_module.policy.to(trainer.strategy.root_device),
                                     lambda: self.base_model))
        self.base = {**scores.as_dict(), "cached": False}
        if self.base_cache is not None:
            write_atomic(self.base_cache, json.dumps(scores.as_dict(), indent=2) + "\n")

    def on_train_end(self, trainer: L.Trainer, pl_module: SPoTModule) -> None:
        consolidate_policy(trainer, pl_module)  # a collective under ZeRO-3: every rank calls it
        if not trainer.is_global_zero:
            return
        model = pl_module.policy
        if self.save is not None:
            model = self.save.save(model, self.chat.tokenizer)  # merged, when LoRA adapters are merged
        if not self.suites:
            return

        def saved() -> str:  # an engine that loads its own copy needs the memory training holds: free it first
            pl_module.cpu()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            return str(self.save_dir)

        scores = self._score(Weights(lambda: model, saved))
        self.trained, self.records = scores.as_dict(), scores.records


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


class TrainProgress(L.Callback):
    """Training progress as a line every 30 s (spot.progress) where no terminal shows Lightning's bar: step,
    loss, tokens/s, elapsed, eta. Rank 0 only."""

    def on_train_start(self, trainer, pl_module) -> None:
        total = trainer.max_steps if trainer.max_steps > 0 else int(trainer.estimated_stepping_batches)
        self.progress = Progress(total, "train", unit="steps", enabled=trainer.is_global_zero and not on_terminal())
        self.progress.update(trainer.global_step)  # a resumed run starts where its checkpoint was
        self.step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:  # inside an accumulated step
            return
        shown = {"loss": float(outputs["loss"]) if isinstance(outputs, dict) else None,
                 "tok_s": trainer.callback_metrics.get("train/tokens_per_s"), "epoch": str(trainer.current_epoch)}
        self.progress.update(trainer.global_step - self.step,
                             **{k: float(v) if hasattr(v, "item") else v for k, v in shown.items() if v is not None})
        self.step = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        self.progress.close()


def train_and_evaluate(module: SPoTModule, datamodule: L.LightningDataModule, trainer: L.Trainer,
                       scoring: RunScoring, out_dir: Path, run_info: dict, ckpt_path: str | None = None) -> dict:
    """Fits (scoring before and after through `scoring`, which must be among the trainer's callbacks) and
    returns the run's metrics, written to `out_dir/metrics.json` by rank 0; other ranks return {}."""
    if scoring not in trainer.callbacks:
        raise ValueError("train_and_evaluate: pass the RunScoring callback to the Trainer's callbacks")
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    fit_seconds = time.time() - t0
    if not trainer.is_global_zero:
        return {}
    if scoring.records is not None:
        write_samples(out_dir / "samples.jsonl", scoring.records, "trained")
    base, trained = scoring.base, scoring.trained
    base_s, eval_s = (base["seconds"] if base else 0.0), (trained["seconds"] if trained else 0.0)
    # trainer.fit's wall time includes both scorings (they run in its hooks): "fit" is the training alone
    seconds = {"base_eval": base_s, "fit": round(fit_seconds - base_s - eval_s, 1), "eval": eval_s}
    train_metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if not k.endswith("_bar")}
    metrics = assemble(run_info, scoring.suites, scoring.sampling, scoring.seed, trained, base,
                       generation=scoring.engine.name, train=train_metrics, steps=trainer.global_step,
                       seconds=seconds)
    write_metrics(out_dir, metrics)
    flat = summary_metrics(metrics)
    for logger in trainer.loggers:  # suite scores under names shared by every method, so dashboards line up
        logger.log_metrics(flat, step=trainer.global_step)
    if trained is not None:
        print(describe_scoring(scoring.sampling, scoring.suites))
        label = run_info.get("label") or run_info.get("method", "trained")  # a sweep job's: its swept settings
        print(format_table([("Base", base["groups"]), (label, trained["groups"])]))
    else:
        print(metrics["note"])
    return metrics
