"""Evaluation during training: a cheap subset of the suites and the KL to the reference every N steps, so the
curves show when forgetting starts.

Wire it into train.py through the trainer's callbacks (see experiments/README.md), e.g.

    - _target_: spot.evaluate.callback.EvalCallback
      every_n_steps: 25
      suites: {_target_: spot.toy.suites.toy_suites, n_in_domain: 64, n_ood: 32, n_prior: 32}

Each evaluation appends one row to `<run dir>/eval_log.jsonl` ({"step", "eval/<suite>/accuracy",
"eval/<group>", "eval/kl/token", "eval/kl/sequence"}) and sends the same names to the trainer's loggers.
Only global rank zero evaluates (ZeRO-2 and DDP keep a whole policy on every rank).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import lightning as L

from spot.engines.hf import HFEngine
from spot.evaluate.kl import KLSettings, kl_to_reference, spread_prompts
from spot.evaluate.scoring import score_model
from spot.evaluate.suites import Suite
from spot.generation import Sampling


class EvalCallback(L.Callback):
    """Evaluates before the first step and then every `every_n_steps` optimizer steps.

    The KL reference is the module's live reference model when it has one; otherwise (SFT-type losses, or a
    precomputed or adapters-off reference: spot.reference) a frozen copy of the policy taken at the start of
    training, which doubles the policy's memory: set `kl_prompts=0` to skip the KL on a model where that does
    not fit.
    """

    def __init__(self, suites: list[Suite] | Suite, every_n_steps: int = 50, sampling: Sampling | dict | None = None,
                 kl_prompts: int = 32, kl_max_new_tokens: int = 128,
                 seed: int = 0, log_file: str | None = None, at_start: bool = True):
        if every_n_steps < 1:
            raise ValueError(f"EvalCallback.every_n_steps must be at least 1, got {every_n_steps}")
        self.suites = [suites] if isinstance(suites, Suite) else list(suites)
        if sampling is None or isinstance(sampling, Sampling):
            self.sampling = sampling or Sampling()
        else:
            self.sampling = Sampling(**dict(sampling))
        self.every, self.seed, self.at_start = every_n_steps, seed, at_start
        self.kl = KLSettings(n_prompts=kl_prompts, max_new_tokens=kl_max_new_tokens)
        self.log_file = log_file
        self.chat = self.reference = self.path = None
        self.last_step = -1

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.chat = getattr(trainer.datamodule, "chat", None)  # the prompt format the policy is trained with
        if self.chat is None:
            raise ValueError("EvalCallback needs the PairDataModule's chat format: trainer.fit(..., datamodule=...)")
        reference = pl_module.reference.model  # a live reference's frozen model, else None
        if reference is None and self.kl.n_prompts > 0 and trainer.is_global_zero:
            reference = copy.deepcopy(pl_module.policy).eval().requires_grad_(False)
        self.reference = reference
        path = Path(self.log_file) if self.log_file else Path(trainer.default_root_dir) / "eval_log.jsonl"
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.at_start:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step  # micro-batches of one accumulated step share it: evaluate once
        if step > 0 and step % self.every == 0 and step != self.last_step:
            self._evaluate(trainer, pl_module)

    def _evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_step = trainer.global_step
        if not trainer.is_global_zero:
            return
        policy = pl_module.policy
        in_memory = HFEngine(policy, self.chat.tokenizer)  # the policy as it trains, never written to disk
        scores = score_model(in_memory, self.chat, self.suites, self.sampling, seed=self.seed, progress=False).as_dict()
        row = {f"eval/{k}/accuracy": v for k, v in scores["suites"].items()}
        row |= {f"eval/{g}": v for g, v in scores["groups"].items()}
        if self.reference is not None and self.kl.n_prompts > 0:
            self.reference.to(pl_module.device)
            prompts = spread_prompts([s.prompts for s in self.suites], self.kl.n_prompts)
            kl = kl_to_reference(policy, self.reference, self.chat, prompts, self.kl, seed=self.seed)
            row |= {"eval/kl/token": kl["token"], "eval/kl/sequence": kl["sequence"]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch, **row}) + "\n")
        for logger in trainer.loggers:
            logger.log_metrics(row, step=trainer.global_step)
