"""What changes under DeepSpeed: the optimizer class with CPU offload, a frozen reference under ZeRO-3, and
checkpoint directories written whole (AtomicDeepSpeedStrategy, the strategy conf/trainer/deepspeed_*.yaml name).

Both are only reached on GPUs (Lightning's DeepSpeedStrategy refuses to start without CUDA); the CPU tests check
the configs and the choices made here, benchmarks/gpu_check.py runs them on one GPU.
"""

from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path

import torch
from lightning.pytorch.strategies import DeepSpeedStrategy

from spot.rows import commit_directory, recover_directory, staging_directory

log = logging.getLogger(__name__)


def _deepspeed_config(strategy) -> dict | None:
    """The DeepSpeed config dict of a DeepSpeedStrategy, None for any other strategy."""
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


def consolidate_policy(trainer, module) -> None:
    """Under ZeRO-3, give rank 0 a whole copy of the trained policy (for evaluation and save_pretrained).

    ZeRO-3 leaves each rank a shard of every weight, so after `fit` the policy cannot generate or be saved.
    Call this on *every* rank right after `trainer.fit` (gathering is a collective); rank 0's `module.policy`
    is then replaced by an ordinary model on its device holding the full weights. A no-op otherwise.
    """
    config = _deepspeed_config(trainer.strategy)
    if config is None or config.get("zero_optimization", {}).get("stage") != 3:
        return
    import deepspeed
    from transformers import AutoModelForCausalLM

    policy = module.policy
    with deepspeed.zero.GatheredParameters(list(policy.parameters()), modifier_rank=None):
        state = {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()} if trainer.is_global_zero \
            else None
    if not trainer.is_global_zero:
        return
    from transformers.initialization import no_init_weights

    with no_init_weights():  # the weights come from `state`: skip the random initialisation of 8B parameters
        full = AutoModelForCausalLM.from_config(policy.config, dtype=next(iter(state.values())).dtype)
    full.load_state_dict(state, strict=False)
    full.tie_weights()
    module.policy = full.to(module.device).eval()
    log.info("ZeRO-3 policy gathered on rank 0 for evaluation and saving")



class AtomicDeepSpeedStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeedStrategy, with each checkpoint directory written whole or not at all.

    DeepSpeed writes a checkpoint as a directory in which every rank saves its shards, over the previous
    checkpoint of that name: a crash midway leaves a directory that mixes two steps. Here every rank writes into
    a staging directory beside it, and once all have written, rank 0 swaps it in (spot.rows.commit_directory:
    fsync, COMPLETE marker, rename). Like DeepSpeed's own checkpoints, it needs a run directory that every node
    sees.
    """

    def save_checkpoint(self, checkpoint: dict, filepath, storage_options=None) -> None:
        target = Path(self.broadcast(str(filepath)))
        staging = staging_directory(target)
        if self.is_global_zero:
            shutil.rmtree(staging, ignore_errors=True)  # what a crashed save left
        self.barrier("checkpoint-staging")
        super().save_checkpoint(checkpoint, staging, storage_options)
        self.barrier("checkpoint-written")
        if self.is_global_zero:
            commit_directory(target)
        self.barrier("checkpoint-committed")

    def load_checkpoint(self, checkpoint_path):
        if self.is_global_zero:
            recover_directory(checkpoint_path)  # a crash between the swap's two renames
        self.barrier("checkpoint-recovered")
        return super().load_checkpoint(checkpoint_path)
