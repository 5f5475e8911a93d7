"""The objectives of SPoT and its baselines, as small pure functions over per-sequence log-probs.

Every loss takes a `SequenceLogps` (log-probs summed over completion tokens) and returns per-example losses
plus reward diagnostics; reduction, logging and the reward-shift state live in the module. With
r(x, y) = beta * (log pi(y|x) - log pi_ref(y|x)) and s the sigmoid (docs/METHOD.md, "Objectives"):

    sft / rft / sft_plus   -log pi(y|x)                        (same function; they differ in data)
    dpo                    -log s(r+ - r-)
    reward_sft             -log s(r+)
    bce                    -log s(r+) - log s(-r-)
    bco (SPoT)             -log s(r+ - delta) - log s(-(r- - delta))

Not SPoT, and not among the paper's baselines: objectives the literature proposes for the failure the small-scale
study found (the chosen likelihood falls while the margin grows, on pairs a few tokens apart), kept as extra
rows of experiments/study, each with one more coefficient w (`loss.weight`):

    dpo_nll                -log s(r+ - r-) + w * NLL(y+)/|y+|     RPO (Pang et al. 2024), w = 1
    bco_nll                bco + w * NLL(y+)/|y+|                  the same NLL term on BCO
    dpop                   -log s(r+ - r- - w * max(0, -r+))       DPO-Positive (Pal et al. 2024), w = lambda = 50

Each function declares what it needs (`needs_reference`, `needs_pairs`, `needs_shift`) so that the module
skips the reference forward and the rejected half of the batch when a loss does not use them. An `Objective`
carries the function with its hyper-parameters (beta) and those needs; the Hydra group `loss=` builds one
(conf/loss/<name>.yaml names the function and its beta), and the module reads everything from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spot.errors import ConfigError, check, check_type


@dataclass
class SequenceLogps:
    """Summed completion log-probs, each (B,). Reference and rejected entries are None when unused."""

    chosen: torch.Tensor
    chosen_tokens: torch.Tensor
    rejected: torch.Tensor | None = None
    rejected_tokens: torch.Tensor | None = None
    ref_chosen: torch.Tensor | None = None
    ref_rejected: torch.Tensor | None = None


@dataclass
class LossOutput:
    losses: torch.Tensor  # (B,) un-reduced
    chosen_rewards: torch.Tensor | None = None  # (B,) detached
    rejected_rewards: torch.Tensor | None = None  # (B,) detached


def declares(reference: bool, pairs: bool, shift: bool = False, weight: bool = False):
    """Marks what a loss needs, so the module can skip work the loss does not use; `weight`: the loss takes the
    coefficient of an added term (the not-SPoT rows)."""

    def mark(fn):
        fn.needs_reference, fn.needs_pairs, fn.needs_shift = reference, pairs, shift
        fn.takes_weight = weight
        return fn

    return mark


def implicit_rewards(lp: SequenceLogps, beta: float) -> tuple[torch.Tensor, torch.Tensor | None]:
    """r = beta * (log pi - log pi_ref) for chosen and (when present) rejected completions."""
    chosen = beta * (lp.chosen - lp.ref_chosen)
    rejected = None if lp.rejected is None else beta * (lp.rejected - lp.ref_rejected)
    return chosen, rejected


def per_token_nll(lp: SequenceLogps) -> torch.Tensor:
    """-log pi(y+|x) / |y+|: the SFT term, per token."""
    return -lp.chosen / lp.chosen_tokens.clamp(min=1)


@declares(reference=False, pairs=False)
def sft(lp: SequenceLogps, shift: torch.Tensor | None = None) -> LossOutput:
    """Negative log-likelihood of the target completion, per token.

    Deviation from docs/METHOD.md's summed form: the sum is divided by the completion's token count, as SFT
    trainers usually do, so long and short targets weigh alike and the learning rate does not depend on length.
    """
    return LossOutput(losses=per_token_nll(lp))


# RFT trains on the policy's own correct samples, SFT+ on rectified y+: the same objective as SFT.
rft = sft
sft_plus = sft


@declares(reference=True, pairs=True)
def dpo(lp: SequenceLogps, beta: float = 0.1, shift: torch.Tensor | None = None) -> LossOutput:
    """DPO (Rafailov et al. 2023, eq. 7): -log s(r+ - r-). Policy == reference gives log 2."""
    r_c, r_r = implicit_rewards(lp, beta)
    return LossOutput(-F.logsigmoid(r_c - r_r), r_c.detach(), r_r.detach())


@declares(reference=True, pairs=False)
def reward_sft(lp: SequenceLogps, beta: float = 0.1, shift: torch.Tensor | None = None) -> LossOutput:
    """-log s(r+): SFT on y+ whose gradient is scaled by 1 - s(r+), a per-sample early stop (docs/METHOD.md)."""
    r_c, _ = implicit_rewards(lp, beta)
    return LossOutput(-F.logsigmoid(r_c), r_c.detach())


@declares(reference=True, pairs=True)
def bce(lp: SequenceLogps, beta: float = 0.1, shift: torch.Tensor | None = None) -> LossOutput:
    """Binary cross-entropy on the implicit reward: y+ labelled 1, y- labelled 0, no shift."""
    r_c, r_r = implicit_rewards(lp, beta)
    return LossOutput(-F.logsigmoid(r_c) - F.logsigmoid(-r_r), r_c.detach(), r_r.detach())


@declares(reference=True, pairs=True, shift=True)
def bco(lp: SequenceLogps, beta: float = 0.1, shift: torch.Tensor | None = None) -> LossOutput:
    """BCO, the SPoT objective: -log s(r+ - delta) - log s(-(r- - delta)).

    delta (`shift`) is the running mean of rewards, detached, supplied by the module's RewardShift; it stands
    in for beta * log Z(x), which BCO, unlike DPO, does not cancel. shift=None means delta = 0, i.e. BCE.
    """
    r_c, r_r = implicit_rewards(lp, beta)
    delta = 0.0 if shift is None else shift.detach()
    return LossOutput(-F.logsigmoid(r_c - delta) - F.logsigmoid(-(r_r - delta)), r_c.detach(), r_r.detach())


@declares(reference=True, pairs=True, weight=True)
def dpo_nll(lp: SequenceLogps, beta: float = 0.1, weight: float = 1.0, shift: torch.Tensor | None = None) -> LossOutput:
    """Not SPoT. RPO (Pang et al. 2024, "Iterative Reasoning Preference Optimization", eq. 1, alpha = 1 there):
    DPO plus `weight` times the per-token NLL of y+, which keeps the chosen likelihood from falling."""
    out = dpo(lp, beta)
    return LossOutput(out.losses + weight * per_token_nll(lp), out.chosen_rewards, out.rejected_rewards)


@declares(reference=True, pairs=True, shift=True, weight=True)
def bco_nll(lp: SequenceLogps, beta: float = 0.1, weight: float = 1.0, shift: torch.Tensor | None = None) -> LossOutput:
    """Not SPoT. BCO plus `weight` times the per-token NLL of y+ (RPO's term, on BCO)."""
    out = bco(lp, beta, shift)
    return LossOutput(out.losses + weight * per_token_nll(lp), out.chosen_rewards, out.rejected_rewards)


@declares(reference=True, pairs=True, weight=True)
def dpop(lp: SequenceLogps, beta: float = 0.1, weight: float = 50.0, shift: torch.Tensor | None = None) -> LossOutput:
    """Not SPoT. DPO-Positive (Pal et al. 2024, "Smaug", eq. 3): -log s(beta * [log ratio(y+) - log ratio(y-)
    - lambda * max(0, log pi_ref(y+) - log pi(y+))]). The penalty is beta * lambda * max(0, -log ratio(y+)) =
    lambda * max(0, -r+): zero while y+ stays at or above its reference likelihood. lambda (`weight`) = 50 is the
    value the paper reports."""
    r_c, r_r = implicit_rewards(lp, beta)
    return LossOutput(-F.logsigmoid(r_c - r_r - weight * F.relu(-r_c)), r_c.detach(), r_r.detach())


class RewardShift(torch.nn.Module):
    """BCO's delta: a running mean of all implicit rewards seen in training, kept as checkpointed buffers.

    mode="cumulative" (the authors' code): equal-weight mean of every reward so far.
    mode="ema" (the paper's text): delta <- decay * delta + (1 - decay) * batch mean, starting at the first
    batch mean. Both are updated before use, all-reduced across ranks, and never updated in evaluation.
    """

    def __init__(self, mode: str = "cumulative", decay: float = 0.99):
        super().__init__()
        check(mode in ("cumulative", "ema"), "reward_shift.mode", f"use 'cumulative' or 'ema', got {mode!r}")
        check_type(decay, (int, float), "reward_shift.decay")
        check(0 < decay < 1, "reward_shift.decay", f"must be in (0, 1), got {decay}")
        self.mode, self.decay = mode, decay
        self.register_buffer("total", torch.zeros((), dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("value", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, rewards: torch.Tensor) -> torch.Tensor:
        """Folds this step's rewards (any shape, this rank's) into delta and returns the new delta."""
        stats = torch.stack([rewards.detach().double().sum(),
                             torch.tensor(rewards.numel(), dtype=torch.float64, device=rewards.device)])
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(stats)
        batch_sum, batch_n = stats[0], stats[1]
        if self.mode == "cumulative":
            self.total += batch_sum
            self.value.copy_(self.total / (self.count + batch_n))
        else:
            mean = batch_sum / batch_n
            self.value.copy_(mean if self.count == 0 else self.decay * self.value + (1 - self.decay) * mean)
        self.count += batch_n
        return self.value.float()


@dataclass(frozen=True)
class Objective:
    """A loss function with its hyper-parameters: what the module trains with (conf/loss/<name>.yaml).

    Reward-based losses (those that need a reference) take beta, which must be a positive number; the
    SFT-type losses take none. `needs_*` come from the function's own declaration (`declares`).
    """

    fn: Callable[..., LossOutput]
    beta: float | None = None
    weight: float | None = None  # the added term's coefficient, for the losses that take one (not SPoT)

    def __post_init__(self) -> None:
        if not hasattr(self.fn, "needs_reference"):
            raise ConfigError(f"loss: {getattr(self.fn, '__name__', self.fn)!r} is not a loss of spot.losses "
                              "(it does not declare what it needs with @declares)")
        if self.needs_reference:
            check_type(self.beta, (int, float), "loss.beta")
            check(self.beta > 0, "loss.beta", f"must be positive, got {self.beta}")
        else:
            check(self.beta is None, "loss.beta", f"{self.fn.__name__} has no beta (it uses no reference)")
        if self.fn.takes_weight:
            check_type(self.weight, (int, float), "loss.weight")
            check(self.weight >= 0, "loss.weight", f"must be zero or more, got {self.weight}")
        else:
            check(self.weight is None, "loss.weight", f"{self.fn.__name__} takes no weight (only dpo_nll, bco_nll "
                                                      "and dpop do)")

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def needs(self) -> tuple[bool, bool, bool]:
        """(reference, pairs, shift), as the function declares them."""
        return self.fn.needs_reference, self.fn.needs_pairs, self.fn.needs_shift

    needs_reference = property(lambda self: self.needs[0])
    needs_pairs = property(lambda self: self.needs[1])
    needs_shift = property(lambda self: self.needs[2])

    def __call__(self, lp: SequenceLogps, shift: torch.Tensor | None = None) -> LossOutput:
        if self.beta is None:
            return self.fn(lp, shift=shift)
        if self.weight is not None:
            return self.fn(lp, beta=self.beta, weight=self.weight, shift=shift)
        return self.fn(lp, beta=self.beta, shift=shift)
