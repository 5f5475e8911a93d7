"""The DeepSpeed trainer configs, on CPU: each builds its strategy, and the DeepSpeed config it implies is valid.

Lightning's DeepSpeedStrategy refuses to set up without CUDA, so these tests stop where a GPU would be needed:
they compose the config, instantiate the strategy, let Lightning fill in the batch, accumulation, clipping and
precision entries exactly as it does at `fit` (its `_format_config`), and parse the result with DeepSpeed's own
config class. benchmarks/gpu_check.py runs the rest on a GPU.
"""

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from lightning.pytorch.strategies import DeepSpeedStrategy

from spot.speed.deepspeed import adamw_class, prepare_reference

CONF = Path(__file__).resolve().parents[1] / "conf"

EXPECTED = {  # config: (stage, optimizer offloaded, parameters offloaded)
    "deepspeed_zero2": (2, False, False),
    "deepspeed_zero2_offload": (2, True, False),
    "deepspeed_zero3": (3, False, False),
    "deepspeed_zero3_offload": (3, True, True),
}


def composed(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=[f"trainer={name}", "data=rectified_4k", *overrides])


def implied_deepspeed_config(cfg) -> tuple[DeepSpeedStrategy, dict]:
    """The strategy from the config, and the DeepSpeed config Lightning would hand to deepspeed.initialize."""
    strategy = instantiate(cfg.trainer.strategy)
    trainer = L.Trainer(accelerator="cpu", devices=1, strategy=strategy, precision=cfg.trainer.precision,
                        accumulate_grad_batches=cfg.trainer.accumulate_grad_batches,
                        gradient_clip_val=cfg.trainer.gradient_clip_val, logger=False)
    module = L.LightningModule()
    trainer.strategy.connect(module)
    module.trainer = trainer
    trainer.strategy._format_config()
    return strategy, strategy.config


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deepspeed_config_builds_the_strategy_and_a_valid_deepspeed_config(name):
    from deepspeed.runtime.config import DeepSpeedConfig

    cfg = composed(name)
    assert cfg.trainer.accelerator == "gpu" and cfg.trainer.devices == 8 and cfg.trainer.precision == "bf16-mixed"
    strategy, ds = implied_deepspeed_config(cfg)
    assert type(strategy).__name__ == "AtomicDeepSpeedStrategy"  # checkpoint directories written whole
    stage, offload_opt, offload_param = EXPECTED[name]
    zero = ds["zero_optimization"]
    assert zero["stage"] == stage
    assert ("offload_optimizer" in zero) == offload_opt and ("offload_param" in zero) == offload_param
    if offload_opt:
        assert zero["offload_optimizer"]["device"] == "cpu" and zero["offload_optimizer"]["pin_memory"]
    assert ds["bf16"] == {"enabled": True} and ds["gradient_clipping"] == 1.0
    # the paper's global batch: 2 pairs per GPU x 2 accumulation x 8 GPUs = 32
    assert ds["train_micro_batch_size_per_gpu"] * ds["gradient_accumulation_steps"] * cfg.trainer.devices == 32
    parsed = DeepSpeedConfig(dict(ds))  # DeepSpeed's own validation (world size 1 here)
    assert parsed.zero_optimization_stage == stage
    assert (adamw_class(strategy).__name__ == "DeepSpeedCPUAdam") == offload_opt


def test_multi_node_is_an_override():
    cfg = composed("deepspeed_zero3", "trainer.num_nodes=4")
    assert cfg.trainer.num_nodes == 4 and cfg.trainer.devices == 8


def test_single_gpu_config_and_cpu_keep_torch_adamw():
    cfg = composed("gpu")
    assert cfg.trainer.accelerator == "gpu" and "strategy" not in cfg.trainer
    assert adamw_class(L.Trainer(accelerator="cpu", logger=False).strategy) is torch.optim.AdamW


def test_reference_outside_zero3_just_moves_to_the_device():
    ref = torch.nn.Linear(2, 2)
    trainer = L.Trainer(accelerator="cpu", logger=False)
    assert prepare_reference(ref, trainer.strategy, torch.device("cpu")) is ref
    zero2 = instantiate(composed("deepspeed_zero2").trainer.strategy)
    assert prepare_reference(ref, zero2, torch.device("cpu")) is ref
