"""The LightningModule: a trainable policy, a frozen reference, and the `Objective` chosen with `loss=`."""

from __future__ import annotations

import math

import lightning as L
import torch

from spot.logps import sequence_logps
from spot.lora import has_adapters
from spot.losses import LossOutput, Objective, RewardShift, SequenceLogps, implicit_rewards
from spot.optim import OptimConfig
from spot.speed.deepspeed import adamw_class, prepare_reference


class SPoTModule(L.LightningModule):
    """Runs chosen and rejected completions through the policy in one forward and applies the loss.

    The reference model is held outside the module tree (a plain attribute, not a submodule): the optimizer,
    the checkpoint and DeepSpeed never see it, it stays in eval mode without gradients, and it is only run when
    the loss declares `needs_reference`. BCO's reward shift is a submodule of buffers, so it is checkpointed.

    With `precomputed_reference=True` there is no reference model at all: every batch must carry `ref_logps`
    (spot.refcache fills them before training), and a batch without them is an error, never a silent fallback.
    A batch that carries them is scored with them even when a reference model is present.

    A policy with LoRA adapters (peft) needs neither: its reference is itself with the adapters disabled, the
    untouched base, run without gradients. Its checkpoints then hold the trainable weights (the adapters) and
    the reward shift only, not the frozen base, which is reloaded from model.path on resume.
    """

    def __init__(self, policy: torch.nn.Module, objective: Objective, reference: torch.nn.Module | None = None,
                 reward_shift: RewardShift | None = None, optim: OptimConfig | None = None,
                 precomputed_reference: bool = False):
        super().__init__()
        self.policy, self.objective, self.optim = policy, objective, optim or OptimConfig()
        self.needs_reference = objective.needs_reference
        self.needs_pairs, self.needs_shift = objective.needs_pairs, objective.needs_shift
        self.precomputed_reference = precomputed_reference and self.needs_reference
        self.adapter_reference = (self.needs_reference and reference is None and not self.precomputed_reference
                                  and has_adapters(policy))
        self.adapters_only = has_adapters(policy)
        self.strict_loading = not self.adapters_only  # an adapters-only checkpoint lacks the frozen base
        if self.needs_reference and reference is None and not (self.precomputed_reference or self.adapter_reference):
            raise ValueError("this loss needs a reference model, precomputed reference log-probs or a policy "
                             "with adapters; none was given")
        if self.needs_shift and reward_shift is None:
            reward_shift = RewardShift()
        self.reward_shift = reward_shift if self.needs_shift else None
        object.__setattr__(self, "reference", reference if self.needs_reference else None)
        if self.reference is not None:
            self.reference.eval().requires_grad_(False)

    def on_fit_start(self) -> None:
        self.policy.train()  # from_pretrained returns eval mode, and Lightning keeps modules' modes
        if self.reference is not None:  # on the device, or sharded for inference under ZeRO-3
            object.__setattr__(self, "reference", prepare_reference(self.reference, self.trainer.strategy,
                                                                    self.device))

    def forward_logps(self, batch: dict[str, torch.Tensor]) -> SequenceLogps:
        """Policy (and reference) log-probs; with pairs the batch holds B chosen then B rejected sequences."""
        batch = dict(batch)
        ref = batch.pop("ref_logps", None)  # (N,) precomputed reference log-probs, when attached
        batch.pop("index", None)  # (B,) which examples these are (spot.data): not a model input
        logp, n_tok = sequence_logps(self.policy, **batch)  # (N,), (N,)
        b = logp.shape[0] // 2 if self.needs_pairs else logp.shape[0]
        if not self.needs_reference:
            ref = None
        elif ref is None and self.adapter_reference:
            ref = self._base_logps(batch)
        elif ref is None and self.reference is None:
            raise RuntimeError("precomputed_reference=True but this batch carries no ref_logps: attach them "
                               "with spot.refcache.ReferenceLogps (train.py does when speed.precompute_reference)")
        elif ref is None:
            with torch.no_grad():
                ref, _ = sequence_logps(self.reference, **batch)
        pairs = self.needs_pairs
        return SequenceLogps(
            chosen=logp[:b], chosen_tokens=n_tok[:b],
            rejected=logp[b:] if pairs else None, rejected_tokens=n_tok[b:] if pairs else None,
            ref_chosen=None if ref is None else ref[:b],
            ref_rejected=None if ref is None or not pairs else ref[b:],
        )

    @torch.no_grad()
    def _base_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The reference log-probs of a LoRA policy: the same model with its adapters off, in eval mode."""
        was_training = self.policy.training
        self.policy.eval()
        try:
            with self.policy.disable_adapter():
                ref, _ = sequence_logps(self.policy, **batch)
        finally:
            self.policy.train(was_training)
        return ref

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.adapters_only:  # the trainable weights and the buffers (reward shift); the base is model.path
            keep = {f"policy.{n}" for n, p in self.policy.named_parameters() if p.requires_grad}
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items()
                                        if k in keep or k.startswith("reward_shift.")}

    def _shared_step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        lp = self.forward_logps(batch)
        shift = None
        if self.needs_shift:
            if stage == "train":  # updated before use, never in evaluation
                r_c, r_r = implicit_rewards(lp, self.objective.beta)
                shift = self.reward_shift.update(torch.cat([r_c, r_r]))
            else:
                shift = self.reward_shift.value.float()
        out: LossOutput = self.objective(lp, shift=shift)
        loss = out.losses.mean()
        self._log_step(stage, loss, lp, out, shift)
        return loss

    def _log_step(self, stage: str, loss: torch.Tensor, lp: SequenceLogps, out: LossOutput,
                  shift: torch.Tensor | None) -> None:
        on_step = stage == "train"
        metrics = {f"{stage}/loss": loss.detach(),
                   f"{stage}/logps/chosen": (lp.chosen / lp.chosen_tokens.clamp(min=1)).mean().detach()}
        if out.chosen_rewards is not None:
            metrics[f"{stage}/rewards/chosen"] = out.chosen_rewards.mean()
        if out.rejected_rewards is not None:
            margins = out.chosen_rewards - out.rejected_rewards
            metrics[f"{stage}/rewards/rejected"] = out.rejected_rewards.mean()
            metrics[f"{stage}/rewards/margins"] = margins.mean()
            metrics[f"{stage}/rewards/accuracies"] = (margins > 0).float().mean()
        if lp.ref_rejected is not None:
            # y- are samples of the base policy (= the reference), so the mean per-token log-ratio on them
            # is an unbiased estimate of KL(pi_ref || pi) per token.
            log_ratio = (lp.ref_rejected - lp.rejected.detach()) / lp.rejected_tokens.clamp(min=1)
            metrics[f"{stage}/kl"] = log_ratio.mean()
        if shift is not None:
            metrics[f"{stage}/reward_shift"] = shift
        # sync_dist on steps too: under N processes a step's metrics are those of its global batch (the mean of
        # the ranks' means), not rank 0's share; a few scalars, beside the gradient all-reduce
        self.log_dict(metrics, on_step=on_step, on_epoch=not on_step, prog_bar=False,
                      batch_size=lp.chosen.shape[0], sync_dist=True)
        self.log(f"{stage}/loss_bar", loss.detach(), prog_bar=True, logger=False,
                 batch_size=lp.chosen.shape[0])

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def configure_optimizers(self):
        decay = [p for p in self.policy.parameters() if p.requires_grad and p.ndim >= 2]
        no_decay = [p for p in self.policy.parameters() if p.requires_grad and p.ndim < 2]
        adamw = adamw_class(self.trainer.strategy)  # DeepSpeedCPUAdam when DeepSpeed offloads the optimizer
        opt = adamw([{"params": decay, "weight_decay": self.optim.weight_decay},
                     {"params": no_decay, "weight_decay": 0.0}],
                    lr=self.optim.lr, betas=tuple(self.optim.betas))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(total * self.optim.warmup_ratio)
        floor = self.optim.min_lr_ratio

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
