"""The LightningModule: a trainable policy, a frozen reference, and the `Objective` chosen with `loss=`."""

from __future__ import annotations

import math

import lightning as L
import torch

from spot.logps import sequence_logps
from spot.lora import has_adapters
from spot.losses import LossOutput, Objective, RewardShift, SequenceLogps, implicit_rewards
from spot.optim import OptimConfig
from spot.reference import ADAPTERS_OFF, NO_REFERENCE, NONE, Reference
from spot.speed.deepspeed import adamw_class, prepare_reference


class SPoTModule(L.LightningModule):
    """Runs chosen and rejected completions through the policy in one forward and applies the loss.

    The reference is a `spot.reference.Reference`, decided by the caller (run.py: `spot.reference.decide`):
    none, live (a frozen model held outside the module tree: the optimizer, the checkpoint and DeepSpeed never
    see it), precomputed (every batch carries `ref_logps`, from spot.refcache) or adapters_off (a LoRA policy
    with its adapters disabled). It is only asked when the loss declares `needs_reference`. BCO's reward shift
    is a submodule of buffers, so it is checkpointed.

    A policy with LoRA adapters checkpoints the trainable weights (the adapters) and the reward shift only, not
    the frozen base, which is reloaded from model.path on resume.
    """

    def __init__(self, policy: torch.nn.Module, objective: Objective, reference: Reference = NO_REFERENCE,
                 reward_shift: RewardShift | None = None, optim: OptimConfig | None = None):
        super().__init__()
        self.policy, self.objective, self.optim = policy, objective, optim or OptimConfig()
        self.needs_pairs, self.needs_shift = objective.needs_pairs, objective.needs_shift
        # a mismatch is the caller's mistake: a reference loaded for nothing, or a loss left without one
        if objective.needs_reference and reference.kind == NONE:
            raise ValueError("this loss needs a reference model, precomputed reference log-probs or a policy "
                             "with adapters; none was given")
        if not objective.needs_reference and reference.kind != NONE:
            raise ValueError(f"this loss uses no reference; a {reference.kind} reference was given")
        if reference.kind == ADAPTERS_OFF and not has_adapters(policy):
            raise ValueError("an adapters_off reference needs a policy with LoRA adapters (spot.lora)")
        self.reference = reference
        self.adapters_only = has_adapters(policy)
        self.strict_loading = not self.adapters_only  # an adapters-only checkpoint lacks the frozen base
        if self.needs_shift and reward_shift is None:
            reward_shift = RewardShift()
        self.reward_shift = reward_shift if self.needs_shift else None

    def on_fit_start(self) -> None:
        self.policy.train()  # from_pretrained returns eval mode, and Lightning keeps modules' modes
        if self.reference.model is not None:  # on the device, or sharded for inference under ZeRO-3
            model = prepare_reference(self.reference.model, self.trainer.strategy, self.device)
            self.reference = Reference.live(model)

    def forward_logps(self, batch: dict[str, torch.Tensor]) -> SequenceLogps:
        """Policy (and reference) log-probs; with pairs the batch holds B chosen then B rejected sequences."""
        batch = dict(batch)
        ref = batch.pop("ref_logps", None)  # (N,) precomputed reference log-probs, when attached
        batch.pop("index", None)  # (B,) which examples these are (spot.data): not a model input
        logp, n_tok = sequence_logps(self.policy, **batch)  # (N,), (N,)
        b = logp.shape[0] // 2 if self.needs_pairs else logp.shape[0]
        ref = self.reference.logps(self.policy, batch, attached=ref)
        pairs = self.needs_pairs
        return SequenceLogps(
            chosen=logp[:b], chosen_tokens=n_tok[:b],
            rejected=logp[b:] if pairs else None, rejected_tokens=n_tok[b:] if pairs else None,
            ref_chosen=None if ref is None else ref[:b],
            ref_rejected=None if ref is None or not pairs else ref[b:],
        )

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
