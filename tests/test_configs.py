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
    return [p for p in PRIMARY if f"- {group}:" in (CONF / f"{p}.yaml").read_text()
            or f"/{group}:" in (CONF / f"{p}.yaml").read_text()]


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
    assert sft.loss._target_ == "spot.losses.sft" and sft.data.path.endswith("direct.jsonl")
    assert bco.loss._target_ == "spot.losses.bco" and bco.data.path.endswith("pairs.jsonl")
    assert sft.optim.lr == 5 * bco.optim.lr  # the paper's 5x ratio
