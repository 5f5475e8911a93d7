"""Where reference log-probs come from is decided once (spot.reference.decide), from the loss and the config."""

from pathlib import Path

import pytest
import torch

from spot import losses
from spot.reference import ADAPTERS_OFF, LIVE, NONE, PRECOMPUTED, Reference, decide

ROOT = Path(__file__).resolve().parents[1]

# (loss needs a reference, speed.precompute_reference, LoRA enabled) -> kind: every row of the table
TABLE = [
    (False, False, False, NONE), (False, True, False, NONE), (False, False, True, NONE), (False, True, True, NONE),
    (True, False, True, ADAPTERS_OFF), (True, True, True, ADAPTERS_OFF),  # LoRA wins over precompute
    (True, True, False, PRECOMPUTED),
    (True, False, False, LIVE),
]


@pytest.mark.parametrize("needs, precompute, lora, kind", TABLE)
def test_decision_table(needs, precompute, lora, kind):
    objective = losses.Objective(losses.dpo, beta=0.1) if needs else losses.Objective(losses.sft)
    assert decide(objective, precompute=precompute, lora=lora) == kind


@pytest.mark.parametrize("overrides, kind", [
    (["loss=sft"], NONE),
    (["loss=bco"], PRECOMPUTED),  # speed.precompute_reference defaults to true
    (["loss=bco", "speed.precompute_reference=false"], LIVE),
    (["loss=dpo", "model.lora.r=4"], ADAPTERS_OFF),
    (["loss=reward_sft", "speed.precompute_reference=false", "model.lora.r=4"], ADAPTERS_OFF),
])
def test_train_settings_carry_the_decided_kind(overrides, kind):
    """train.py's settings hold the one decision that the module, the memory check and the callbacks read."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig

    from spot.run import check_settings

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)  # the trainer's callbacks read ${hydra:...} as under train.py
    try:
        assert check_settings(cfg, None).reference == kind
    finally:
        HydraConfig.instance().cfg = None


def test_only_a_live_reference_holds_a_model():
    model = torch.nn.Linear(2, 2).train()
    live = Reference.live(model)
    assert live.model is model and not model.training and not any(p.requires_grad for p in model.parameters())
    with pytest.raises(ValueError, match="a live reference needs a model"):
        Reference(LIVE)
    for kind in (NONE, PRECOMPUTED, ADAPTERS_OFF):
        assert Reference(kind).model is None
        with pytest.raises(ValueError, match=f"a {kind} reference takes no model"):
            Reference(kind, torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="must be one of"):
        Reference("cached")


def test_attached_log_probs_win_and_a_precomputed_batch_without_them_is_an_error():
    attached = torch.tensor([-1.0, -2.0])
    never = torch.nn.Module()  # a forward on it would fail: attached log-probs must not run any model
    assert Reference(NONE).logps(never, {}, attached=attached) is None  # the loss uses none
    assert Reference(PRECOMPUTED).logps(never, {}, attached=attached) is attached
    assert Reference(ADAPTERS_OFF).logps(never, {}, attached=attached) is attached
    with pytest.raises(RuntimeError, match="carries no ref_logps"):
        Reference(PRECOMPUTED).logps(never, {}, attached=None)
