"""What changes under DeepSpeed: the optimizer class with CPU offload, and a frozen reference under ZeRO-3.

Both are only reached on GPUs (Lightning's DeepSpeedStrategy refuses to start without CUDA); the CPU tests check
the configs and the choices made here, benchmarks/gpu_check.py runs them on one GPU.
"""

from __future__ import annotations

import copy
import logging

import torch

log = logging.getLogger(__name__)


def _deepspeed_config(strategy) -> dict | None:
    """The DeepSpeed config dict of a DeepSpeedStrategy, None for any other strategy."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    return strategy.config if isinstance(strategy, DeepSpeedStrategy) else None


def adamw_class(strategy) -> type[torch.optim.Optimizer]:
    """torch AdamW, or DeepSpeedCPUAdam (the same AdamW update, run on the CPU) when the optimizer is offloaded.

    DeepSpeed refuses a client torch optimizer with ZeRO-Offload (zero_force_ds_cpu_optimizer), and a torch
    Adam step over CPU tensors would be several times slower than its vectorised CPU kernel anyway.
    """
    config = _deepspeed_config(strategy) or {}
    offload = config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    if offload in ("cpu", "nvme"):
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam
    return torch.optim.AdamW


def prepare_reference(reference: torch.nn.Module, strategy, device: torch.device) -> torch.nn.Module:
    """The live frozen reference ready for the forward: sharded for inference under ZeRO-3, else on `device`.

    Under ZeRO-3 a replicated reference would cost what the sharding saved on the policy, so it is wrapped by
    DeepSpeed with the same stage-3 settings and no optimizer: its weights are partitioned over the ranks and
    gathered layer by layer in its forward. (With speed.precompute_reference=true, the default, there is no live
    reference at all.) Returns the wrapped module, whose submodules carry DeepSpeed's gather hooks.
    """
    config = _deepspeed_config(strategy)
    if config is None or config.get("zero_optimization", {}).get("stage") != 3:
        return reference.to(device)
    import deepspeed

    ds_config = copy.deepcopy(config)
    ds_config["zero_optimization"].pop("offload_optimizer", None)
    for key in ("optimizer", "scheduler"):
        ds_config.pop(key, None)
    engine, *_ = deepspeed.initialize(model=reference, config=ds_config)
    engine.eval()
    log.info("frozen reference sharded for inference under ZeRO-3")
    return engine.module
