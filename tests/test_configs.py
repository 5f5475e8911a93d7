"""Every file in conf/ composes, in the primary config that uses its group."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
PRIMARY = sorted(p.stem for p in CONF.glob("*.yaml"))
GROUPS = sorted(d.name for d in CONF.iterdir() if d.is_dir())


def primary_for(group: str) -> list[str]:
    """The primary configs whose defaults list names this group."""
    texts = {p: (CONF / f"{p}.yaml").read_text() for p in PRIMARY}
    return [p for p, text in texts.items() if f"- {group}:" in text or f"- optional {group}:" in text
            or f"/{group}:" in text]


CASES = [(primary, group, option.stem) for group in GROUPS for option in sorted((CONF / group).glob("*.yaml"))
         for primary in (primary_for(group) or ["train"])]


@pytest.mark.parametrize("primary, group, option", CASES, ids=[f"{p}:{g}={o}" for p, g, o in CASES])
def test_config_composes(primary, group, option):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=primary, overrides=[f"{group}={option}"], return_hydra_config=True)
    container = OmegaConf.to_container(cfg, resolve=False)
    assert group in container or option in ("toy_table",) or group in ("method", "experiment")


def test_method_configs_pick_loss_data_and_learning_rate():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        sft = compose(config_name="train", overrides=["method=sft"])
        bco = compose(config_name="train", overrides=["method=bco"])
    assert sft.loss.fn.path == "spot.losses.sft" and sft.data.path.endswith("direct.jsonl")
    assert bco.loss.fn.path == "spot.losses.bco" and bco.data.path.endswith("pairs.jsonl")
    assert sft.optim.lr == 5 * bco.optim.lr  # the paper's 5x ratio


def test_loss_configs_build_objectives_with_their_beta():
    """loss=bco with loss.beta from the command line gives an Objective holding that beta, and its loss is the
    BCO formula at that beta (a beta read from anywhere else, or a default, would give other numbers)."""
    import torch
    import torch.nn.functional as F

    from spot.cli import build
    from spot.losses import Objective, SequenceLogps, bco

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["loss=bco", "loss.beta=0.37"])
        sft = compose(config_name="train", overrides=["loss=sft"])
    objective = build(cfg.loss, "loss")
    assert isinstance(objective, Objective) and objective.fn is bco and objective.beta == 0.37
    assert objective.needs_reference and objective.needs_pairs and objective.needs_shift
    lp = SequenceLogps(chosen=torch.tensor([-3.0, -5.0, -2.0]), chosen_tokens=torch.tensor([3, 5, 2]),
                       rejected=torch.tensor([-4.0, -4.0, -6.0]), rejected_tokens=torch.tensor([4, 4, 6]),
                       ref_chosen=torch.tensor([-4.0, -4.0, -2.0]), ref_rejected=torch.tensor([-4.0, -5.0, -5.0]))
    delta = torch.tensor(0.2)
    r_c, r_r = 0.37 * (lp.chosen - lp.ref_chosen), 0.37 * (lp.rejected - lp.ref_rejected)
    expected = -F.logsigmoid(r_c - delta) - F.logsigmoid(-(r_r - delta))
    assert torch.allclose(objective(lp, shift=delta).losses, expected)
    assert not torch.allclose(Objective(bco, beta=0.1)(lp, shift=delta).losses, expected)
    assert build(sft.loss, "loss").beta is None and not build(sft.loss, "loss").needs_reference


@pytest.mark.parametrize("beta, message", [(None, "loss.beta: must be an int or float, got None"),
                                           ("abc", "loss.beta: must be an int or float, got 'abc'"),
                                           (-0.1, "loss.beta: must be positive, got -0.1")])
def test_reward_losses_refuse_a_missing_or_bad_beta(beta, message):
    from spot.errors import ConfigError
    from spot.losses import Objective, bco, sft

    with pytest.raises(ConfigError, match=message):
        Objective(bco, beta=beta)
    with pytest.raises(ConfigError, match="loss.beta: sft has no beta"):
        Objective(sft, beta=0.1)


@pytest.mark.parametrize("name, weight", [("dpo_nll", 1.0), ("bco_nll", 1.0), ("dpop", 50.0)])
def test_not_spot_loss_configs_carry_their_weight(name, weight):
    """The extra rows of the study: each config builds its loss with the weight its source uses, and
    loss.weight= from the command line replaces it."""
    from spot import losses
    from spot.cli import build

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        default = compose(config_name="train", overrides=[f"method={name}"])
        moved = compose(config_name="train", overrides=[f"method={name}", "loss.weight=3"])
    objective = build(default.loss, "loss")
    assert objective.fn is getattr(losses, name) and objective.weight == weight and objective.beta == 0.1
    assert build(moved.loss, "loss").weight == 3
    assert default.method_name == name and default.data.path.endswith("pairs.jsonl")


@pytest.mark.parametrize("model, pref, sft", [("toy", 1e-4, 5e-4), ("hf", 1e-6, 5e-6), ("smollm2", 1e-6, 5e-6)])
def test_the_learning_rate_comes_from_the_model_config(model, pref, sft):
    """The toy's 1e-4 is 100x the paper's rate: a real model must not get it without a word."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for method, lr in (("bco", pref), ("dpo", pref), ("sft_plus", sft), ("rft", sft)):
            cfg = compose(config_name="train", overrides=[f"model={model}", "model.path=m", f"method={method}"])
            assert cfg.optim.lr == lr, (model, method)
        assert compose(config_name="train", overrides=[f"model={model}", "model.path=m", "pref_lr=3e-5"]).optim.lr \
            == 3e-5
