"""Each objective against values worked out by hand, plus the reward shift's two modes."""

import math

import pytest
import torch

from spot import losses
from spot.losses import RewardShift, SequenceLogps


def lp(chosen, rejected, ref_chosen, ref_rejected, tokens=(4.0, 4.0, 4.0)):
    t = torch.tensor
    return SequenceLogps(chosen=t(chosen, requires_grad=True), chosen_tokens=t(tokens),
                         rejected=t(rejected, requires_grad=True), rejected_tokens=t(tokens),
                         ref_chosen=t(ref_chosen), ref_rejected=t(ref_rejected))


def nls(x):  # -log sigmoid(x) = log(1 + e^-x)
    return math.log1p(math.exp(-x))


def test_dpo_is_log2_when_policy_equals_reference():
    x = lp([-5.0, -2.0, -9.0], [-4.0, -7.0, -1.0], [-5.0, -2.0, -9.0], [-4.0, -7.0, -1.0])
    out = losses.dpo(x, beta=0.1)
    assert torch.allclose(out.losses, torch.full((3,), math.log(2)))
    assert torch.allclose(out.chosen_rewards, torch.zeros(3))


def test_dpo_bce_bco_by_hand():
    """beta=0.1; r+ = 0.1*(-1 - -2) = 0.1, r- = 0.1*(-3 - -2) = -0.1 for every example.

    DPO  = -log s(0.2)
    BCE  = -log s(0.1) - log s(0.1)
    BCO(delta=0.05) = -log s(0.1 - 0.05) - log s(-(-0.1 - 0.05)) = -log s(0.05) - log s(0.15)
    """
    x = lp([-1.0] * 3, [-3.0] * 3, [-2.0] * 3, [-2.0] * 3)
    assert losses.dpo(x, beta=0.1).losses[0].item() == pytest.approx(nls(0.2), rel=1e-6)
    assert losses.bce(x, beta=0.1).losses[0].item() == pytest.approx(2 * nls(0.1), rel=1e-6)
    bco = losses.bco(x, beta=0.1, shift=torch.tensor(0.05))
    assert bco.losses[0].item() == pytest.approx(nls(0.05) + nls(0.15), rel=1e-6)
    assert torch.allclose(losses.bco(x, beta=0.1, shift=None).losses, losses.bce(x, beta=0.1).losses)
    assert losses.reward_sft(x, beta=0.1).losses[0].item() == pytest.approx(nls(0.1), rel=1e-6)


def test_bco_shift_moves_the_decision_boundary():
    """With delta equal to both rewards, each term is -log s(0) = log 2, whatever the rewards are."""
    x = lp([-1.0] * 3, [-1.0] * 3, [-3.0] * 3, [-3.0] * 3)  # r+ = r- = 0.2
    out = losses.bco(x, beta=0.1, shift=torch.tensor(0.2))
    assert torch.allclose(out.losses, torch.full((3,), 2 * math.log(2)), atol=1e-6)


def test_reward_sft_gradient_is_scaled_by_one_minus_sigmoid():
    """d/dlogp [-log s(beta*(logp - ref))] = -beta * (1 - s(r+)): the per-sample early stop."""
    x = lp([-1.0, 0.0, 5.0], [0.0] * 3, [-2.0, -2.0, -2.0], [0.0] * 3)
    losses.reward_sft(x, beta=0.5).losses.sum().backward()
    r = 0.5 * (torch.tensor([-1.0, 0.0, 5.0]) + 2.0)
    assert torch.allclose(x.chosen.grad, -0.5 * (1 - torch.sigmoid(r)), atol=1e-6)


def test_sft_is_per_token_nll_and_aliases():
    x = lp([-8.0, -4.0, -2.0], [0.0] * 3, [0.0] * 3, [0.0] * 3, tokens=(4.0, 2.0, 1.0))
    assert torch.allclose(losses.sft(x).losses, torch.tensor([2.0, 2.0, 2.0]))
    assert losses.rft is losses.sft and losses.sft_plus is losses.sft


def test_losses_declare_their_needs():
    assert (losses.sft.needs_reference, losses.sft.needs_pairs) == (False, False)
    assert (losses.reward_sft.needs_reference, losses.reward_sft.needs_pairs) == (True, False)
    for name in ("dpo", "bce", "bco"):
        fn = getattr(losses, name)
        assert fn.needs_reference and fn.needs_pairs
    assert losses.bco.needs_shift and not losses.bce.needs_shift


def test_reward_shift_cumulative_is_the_mean_of_everything_seen():
    s = RewardShift("cumulative")
    assert s.update(torch.tensor([1.0, 2.0])).item() == pytest.approx(1.5)
    assert s.update(torch.tensor([6.0])).item() == pytest.approx(3.0)  # (1 + 2 + 6) / 3


def test_reward_shift_ema_starts_at_the_first_batch_mean():
    s = RewardShift("ema", decay=0.5)
    assert s.update(torch.tensor([1.0, 3.0])).item() == pytest.approx(2.0)
    assert s.update(torch.tensor([4.0, 4.0])).item() == pytest.approx(3.0)  # 0.5*2 + 0.5*4


def test_reward_shift_state_round_trips():
    a = RewardShift("cumulative")
    a.update(torch.tensor([1.0, 5.0]))
    b = RewardShift("cumulative")
    b.load_state_dict(a.state_dict())
    assert b.update(torch.tensor([3.0])).item() == pytest.approx(3.0)
    with pytest.raises(ValueError, match="reward_shift.mode"):
        RewardShift("median")


def test_not_spot_rows_by_hand():
    """beta=0.1, chosen logp -1 over 4 tokens vs ref -2 (r+ = 0.1), rejected -3 vs -2 (r- = -0.1).

    dpo_nll(w=1)  = -log s(0.2) + 1 * (1/4)
    bco_nll(w=2, delta=0.05) = -log s(0.05) - log s(0.15) + 2 * (1/4)
    dpop: y+ above its reference (r+ > 0) gives no penalty, DPO itself; y+ below it (r+ = -0.1, r- = -0.3)
          gives -log s(-0.1 + 0.3 - 50 * 0.1) = -log s(-4.8)
    """
    x = lp([-1.0] * 3, [-3.0] * 3, [-2.0] * 3, [-2.0] * 3)
    assert losses.dpo_nll(x, beta=0.1, weight=1.0).losses[0].item() == pytest.approx(nls(0.2) + 0.25, rel=1e-6)
    bco = losses.bco_nll(x, beta=0.1, weight=2.0, shift=torch.tensor(0.05))
    assert bco.losses[0].item() == pytest.approx(nls(0.05) + nls(0.15) + 0.5, rel=1e-6)
    assert torch.allclose(losses.dpop(x, beta=0.1, weight=50.0).losses, losses.dpo(x, beta=0.1).losses)
    below = lp([-3.0] * 3, [-5.0] * 3, [-2.0] * 3, [-2.0] * 3)
    assert losses.dpop(below, beta=0.1, weight=50.0).losses[0].item() == pytest.approx(nls(-4.8), rel=1e-5)
    # DPO's gradient on log pi(y+) is -beta * s(-margin); below the reference DPOP's adds -beta * lambda * s(.)
    losses.dpop(below, beta=0.1, weight=50.0).losses.sum().backward()
    assert below.chosen.grad[0].item() == pytest.approx(-0.1 * 51 * (1 - 1 / (1 + math.exp(4.8))), rel=1e-5)


def test_a_weight_belongs_to_the_losses_that_take_one():
    from spot.errors import ConfigError

    assert losses.Objective(losses.dpop, beta=0.1, weight=50.0).needs == (True, True, False)
    assert losses.Objective(losses.bco_nll, beta=0.1, weight=1.0).needs_shift
    with pytest.raises(ConfigError, match="loss.weight: bco takes no weight"):
        losses.Objective(losses.bco, beta=0.1, weight=1.0)
    with pytest.raises(ConfigError, match="loss.weight: must be an int or float, got None"):
        losses.Objective(losses.dpo_nll, beta=0.1)
    with pytest.raises(ConfigError, match="loss.weight: must be zero or more"):
        losses.Objective(losses.dpop, beta=0.1, weight=-1.0)
