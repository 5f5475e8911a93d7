"""Where a run's reference log-probs come from, decided once (`decide`) and held as one `Reference`.

Four kinds, from the objective's needs and the config:

    none          the loss uses no reference (sft)
    adapters_off  a LoRA policy: the reference is the same model with its adapters disabled, no second model
    precomputed   speed.precompute_reference: every batch carries `ref_logps`, scored before training by the
                  policy at its initial weights (spot.refcache); no reference model is ever loaded
    live          a frozen copy of the base loaded beside the policy and run on every batch

run.py decides the kind before any weights load (the memory check needs to know whether a second model comes),
loads the model only for `live`, and hands the `Reference` to the module; the module asks it for each batch's
reference log-probs, and spot.refcache asks it whether to precompute. Nobody else re-derives the kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spot.logps import sequence_logps

NONE, LIVE, PRECOMPUTED, ADAPTERS_OFF = "none", "live", "precomputed", "adapters_off"
KINDS = (NONE, LIVE, PRECOMPUTED, ADAPTERS_OFF)


def decide(objective, precompute: bool, lora: bool) -> str:
    """The kind of reference a run uses: `objective.needs_reference`, speed.precompute_reference, LoRA enabled.

    LoRA wins over precompute: the base with its adapters off needs neither a second model nor a pass before
    training, and it is exact at every step."""
    if not objective.needs_reference:
        return NONE
    if lora:
        return ADAPTERS_OFF
    return PRECOMPUTED if precompute else LIVE


@dataclass(frozen=True, eq=False)
class Reference:
    """One decided reference: its kind, and the frozen model when (and only when) the kind is `live`.

    Held by the module as a plain attribute, so the model stays outside the module tree: the optimizer, the
    checkpoint and DeepSpeed never see it."""

    kind: str = NONE
    model: torch.nn.Module | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"reference kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if (self.model is not None) != (self.kind == LIVE):
            raise ValueError(f"a {self.kind} reference {'needs a' if self.kind == LIVE else 'takes no'} model")
        if self.model is not None:
            self.model.eval().requires_grad_(False)  # frozen: never trained, no dropout

    @classmethod
    def live(cls, model: torch.nn.Module) -> Reference:
        return cls(LIVE, model)

    def logps(self, policy: torch.nn.Module, batch: dict[str, torch.Tensor],
              attached: torch.Tensor | None) -> torch.Tensor | None:
        """(N,) reference log-probs of the batch's sequences, or None when the loss uses none.

        `attached` are log-probs the batch carries (spot.refcache); when present they are used whatever the kind,
        so a precomputed run never runs a reference forward. A precomputed batch without them is an error,
        never a silent fallback to the policy (which has moved since step 0)."""
        if self.kind == NONE:
            return None
        if attached is not None:
            return attached
        if self.kind == PRECOMPUTED:
            raise RuntimeError("precomputed reference but this batch carries no ref_logps: attach them with "
                               "spot.refcache.ReferenceLogps (train.py does when speed.precompute_reference)")
        if self.kind == ADAPTERS_OFF:
            return _base_logps(policy, batch)
        with torch.no_grad():
            return sequence_logps(self.model, **batch)[0]


NO_REFERENCE = Reference()  # the default of a loss that uses none (sft)


@torch.no_grad()
def _base_logps(policy: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The reference log-probs of a LoRA policy: the same model with its adapters off, in eval mode."""
    was_training = policy.training
    policy.eval()
    try:
        with policy.disable_adapter():
            ref, _ = sequence_logps(policy, **batch)
    finally:
        policy.train(was_training)
    return ref
