"""Sweep jobs that differ only in a setting (beta, the shift's mode) get names and printed rows that say which:
conf/train.yaml's hydra.sweep.subdir through spot.entry's resolver, and the job's label (spot.entry.job_label)."""

import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from spot.entry import job_label, register_resolvers, swept_settings

CONF = Path(__file__).resolve().parents[1] / "conf"


def subdir_of(argv: list[str], task: list[str], num: int = 0) -> str:
    """hydra.sweep.subdir as the basic launcher resolves it for the job of `task` in the sweep `argv`."""
    register_resolvers()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=task, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.job.num = num
    HydraConfig.instance().set_config(cfg)
    old = sys.argv
    sys.argv = ["train.py", "-m", *argv]
    try:
        return cfg.hydra.sweep.subdir
    finally:
        sys.argv = old
        HydraConfig.instance().cfg = None  # no sweep around the next test


def test_jobs_differing_in_beta_or_the_shift_mode_get_different_names():
    argv = ["loss=bco", "loss.beta=0.05,0.1", "reward_shift.mode=cumulative,ema", "model.path=/m/x", "seed=3"]
    names = {subdir_of(argv, ["loss=bco", f"loss.beta={b}", f"reward_shift.mode={m}", "model.path=/m/x", "seed=3"])
             for b in (0.05, 0.1) for m in ("cumulative", "ema")}
    # only what the sweep varies; the loss is already in the method's name, the common model path is not repeated
    assert names == {"0_bco_beta-0.05_mode-cumulative", "0_bco_beta-0.05_mode-ema",
                     "0_bco_beta-0.1_mode-cumulative", "0_bco_beta-0.1_mode-ema"}


def test_a_sweep_of_methods_keeps_its_short_names():
    assert subdir_of(["loss=bco,dpo"], ["loss=dpo"], num=1) == "1_dpo"


def test_an_experiments_sweeper_params_count_as_swept():
    name = subdir_of(["experiment=ablation_reward_shift"],
                     ["experiment=ablation_reward_shift", "method=bco", "reward_shift.mode=ema", "seed=2"], num=5)
    assert name == "5_bco_mode-ema_seed-2"


def test_swept_values_are_safe_as_a_directory_and_as_an_override_value():
    settings = swept_settings(["data.path=/data/a b/pairs=v2.jsonl", "optim.betas=[0.9,0.99]"],
                              argv=["data.path=glob(/data/*)", "optim.betas=[0.9,0.95],[0.9,0.99]"])
    assert settings == [("path", "pairs_v2.jsonl"), ("betas", "_0.9_0.99_")]
    assert all(not set("=,/ ") & set(n + v) for n, v in settings)


@pytest.mark.parametrize("task, label", [(["loss.beta=0.05"], "bco beta=0.05"),
                                         (["loss.beta=0.05", "reward_shift.mode=ema"], "bco beta=0.05, mode=ema"),
                                         (["seed=1"], "bco")])
def test_a_jobs_printed_row_is_labelled_by_its_swept_settings(task, label):
    assert job_label("bco", task, argv=["loss.beta=0.05,0.1", "reward_shift.mode=cumulative,ema"]) == label
