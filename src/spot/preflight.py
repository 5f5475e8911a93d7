"""What train.py settles before any weights load: the precision plan, the hardware, whether the model fits.

Each check reads only configs (the trainer's, the model's config.json) and answers in one line, so a run that
cannot work stops in seconds instead of after the model and data are loaded.

Precision. `model.dtype` is the dtype the model computes in; `trainer.precision` is Lightning's. They are
read together, because one combination trains silently almost nothing: half-precision weights updated in place
by AdamW. At the paper's lr 1e-6 an update is below half a bf16 ulp for nearly every weight (bf16 keeps 8
significant bits: a weight of 0.02 moves in steps of 1.2e-4), so the weights stay bit-identical. The plan:

    model.dtype   trainer.precision   strategy     weights loaded as   trained
    bfloat16      bf16-mixed          torch/DDP    float32 (master)    fp32 AdamW, bf16 autocast compute
    bfloat16      bf16-mixed          DeepSpeed    bfloat16            DeepSpeed keeps fp32 master copies
    float32       32-true | *-mixed   any          float32             as set
    bfloat16      32-true | bf16-true torch/DDP    refused             (bf16 weights under a torch AdamW)

With LoRA the base is frozen and loaded in `model.dtype`; the adapters are float32 (peft's default).
"""

from __future__ import annotations

import os

from spot.errors import ConfigError, check

HALF = {"bfloat16": "bf16", "float16": "16"}
ATTENTION = ("sdpa", "eager", "flash_attention_2", "flash_attention_3")


def normalize_precision(precision) -> str:
    """Lightning's spellings (32, "32", "bf16", "16-mixed", ...) as one of its canonical names."""
    p = str(precision)
    return {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}.get(p, p)


def load_dtype(model_dtype: str, precision, deepspeed: bool, lora: bool = False) -> str:
    """The dtype to load the policy's weights in so that it trains (module docstring); ConfigError if it would
    not."""
    p = normalize_precision(precision)
    if model_dtype == "float32":
        return "float32"
    if model_dtype not in HALF:
        raise ConfigError(f"model.dtype: {model_dtype!r} is not one of bfloat16, float16, float32")
    if p.endswith("-mixed") and not p.startswith(HALF[model_dtype]):
        raise ConfigError(f"model.dtype={model_dtype} with trainer.precision={p}: the two name different half "
                          f"precisions; use trainer.precision={HALF[model_dtype]}-mixed")
    if lora or deepspeed and p != "32-true":
        return model_dtype  # frozen base (LoRA), or DeepSpeed's own fp32 master copies
    if p.endswith("-mixed"):
        return "float32"  # master weights: AdamW updates fp32, autocast computes in model.dtype
    raise ConfigError(f"model.dtype={model_dtype} with trainer.precision={p}: AdamW would update {model_dtype} "
                      f"weights in place and at small learning rates almost none would change; use "
                      f"trainer.precision={HALF[model_dtype]}-mixed (fp32 master weights, {model_dtype} compute)")


def is_deepspeed(strategy) -> bool:
    """True for a DeepSpeed strategy, given as Lightning's string ("deepspeed_stage_2") or a config node."""
    target = strategy.get("_target_", "") if hasattr(strategy, "get") else str(strategy or "")
    return "deepspeed" in str(target).lower()


def check_hardware(trainer_name: str, accelerator: str, strategy) -> None:
    """A GPU trainer (or any DeepSpeed strategy) on a machine without CUDA stops here, not in Lightning."""
    import torch

    wants_gpu = str(accelerator) in ("gpu", "cuda") or is_deepspeed(strategy)
    if wants_gpu and not torch.cuda.is_available():
        what = "DeepSpeed" if is_deepspeed(strategy) else f"trainer.accelerator={accelerator}"
        raise ConfigError(f"trainer={trainer_name}: {what} needs a CUDA GPU and torch sees none "
                          "(torch.cuda.is_available() is False); on the CPU use trainer=cpu or trainer=ddp_cpu")


def state_bytes_per_device(n_params: int, trainable: int, weight_bytes: int, world: int, zero_stage: int | None,
                           offload: bool, live_reference: bool) -> float:
    """Bytes of model states one device holds (mixed-precision AdamW accounting of the ZeRO paper: weights,
    gradients, fp32 master copy and Adam's two moments), activations not included.

    torch/DDP: every rank holds its weights, their gradients and 8 bytes of Adam state per trainable
    parameter (plus the master copy when the weights are half). ZeRO-2 shards gradients and optimizer states,
    ZeRO-3 the weights too; offload moves the optimizer states (and, at stage 3, the weights) to the CPU.
    """
    reference = n_params * 2 if live_reference else 0  # a frozen bf16 copy
    if zero_stage is None:
        master = 4 if weight_bytes < 4 else 0
        return n_params * weight_bytes + trainable * (weight_bytes + 8 + master) + reference
    optim = 0 if offload else 12 * trainable / world
    if zero_stage >= 3:
        weights = 0 if offload else n_params * 2 / world
        return weights + trainable * 2 / world + optim + reference / world
    return n_params * 2 + trainable * 2 / world + optim + reference


def device_memory_bytes(accelerator: str) -> tuple[float, str]:
    """(bytes, what) of one training device: the first GPU's memory, else this machine's RAM."""
    import torch

    if str(accelerator) in ("gpu", "cuda") and torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return float(props.total_memory), f"a {props.name} has"
    return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")), "this machine's RAM is"


def check_model_fits(model_path: str, config, lora, weights_dtype: str, accelerator: str, devices,
                     strategy: dict | str | None, live_reference: bool) -> None:
    """Stops a run whose model states alone (state_bytes_per_device) exceed 90% of one device's memory,
    counted from the model's config on the meta device: no weights are read. On the CPU the processes share
    the machine's RAM."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    n_params = sum(p.numel() for p in model.parameters())
    trainable = lora.trainable_parameters(model)
    world = devices if isinstance(devices, int) and devices > 0 else 1
    ds = strategy if isinstance(strategy, dict) and is_deepspeed(strategy) else {}
    stage = ds.get("stage") if ds else (2 if is_deepspeed(strategy) else None)
    offload = bool(ds.get("offload_optimizer"))
    need = state_bytes_per_device(n_params, trainable, 2 if weights_dtype != "float32" else 4, world, stage,
                                  offload, live_reference)
    have, what = device_memory_bytes(accelerator)
    on_cpu = str(accelerator) == "cpu" or not torch.cuda.is_available()
    _check_fits(model_path, n_params, need, have, what, world if on_cpu else 1)


def _check_fits(model_path: str, n_params: int, need: float, have: float, what: str, processes: int) -> None:
    if need * processes > 0.9 * have:
        per = f" per process x {processes} processes" if processes > 1 else ""
        raise ConfigError(f"model.path={model_path}: {n_params / 1e9:.2f}B parameters need {need / 2**30:.1f} GiB "
                          f"of weights, gradients and optimizer states{per} under this trainer, and {what} "
                          f"{have / 2**30:.1f} GiB; use LoRA (model.lora.r=16), a DeepSpeed ZeRO trainer "
                          "(trainer=deepspeed_zero3) or more devices")


def check_attention(attn_implementation: str | None) -> None:
    """model.attn_implementation: a known kernel, and the flash kernels only where they can run."""
    import torch

    if attn_implementation is None:
        return
    check(attn_implementation in ATTENTION, "model.attn_implementation",
          f"use one of {', '.join(ATTENTION)} (or null: the model's default), got {attn_implementation!r}")
    if attn_implementation.startswith("flash"):
        import importlib.util

        package = "flash_attn" if attn_implementation == "flash_attention_2" else "flash_attn_interface"
        if not torch.cuda.is_available():
            raise ConfigError(f"model.attn_implementation={attn_implementation} needs a CUDA GPU; use sdpa here")
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"model.attn_implementation={attn_implementation}: the {package} package is not "
                              "installed (pip install flash-attn --no-build-isolation); sdpa needs nothing")


PRECISIONS = ("32-true", "64-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "transformer-engine")


def check_trainer(trainer: dict) -> None:
    """The Trainer's numeric settings, typed and in range, before Lightning sees them (a string in max_epochs
    would surface mid-fit as a comparison error)."""
    from spot.errors import check_type

    for key, low in (("max_epochs", -1), ("max_steps", -1), ("accumulate_grad_batches", 1),
                     ("log_every_n_steps", 1), ("num_nodes", 1)):
        if trainer.get(key) is not None:
            check_type(trainer[key], int, f"trainer.{key}")
            check(trainer[key] >= low, f"trainer.{key}", f"must be {low} or more, got {trainer[key]}")
    clip = trainer.get("gradient_clip_val")
    if clip is not None:
        check_type(clip, (int, float), "trainer.gradient_clip_val")
        check(clip >= 0, "trainer.gradient_clip_val", f"must be 0 or more, got {clip}")
    devices = trainer.get("devices", "auto")
    if devices != "auto" and not isinstance(devices, list | tuple):
        check_type(devices, int, "trainer.devices")
        check(devices >= 1 or devices == -1, "trainer.devices", f"must be a count, -1, a list or auto, got {devices}")
    check(normalize_precision(trainer.get("precision", "32-true")) in PRECISIONS, "trainer.precision",
          f"use one of {', '.join(PRECISIONS)}, got {trainer.get('precision')!r}")


def checkpoint_cadence(every_minutes: float | None = None, every_n_steps: int | None = None) -> dict | None:
    """ModelCheckpoint's arguments for mid-epoch checkpoints (conf/train.yaml `checkpoint`), or None."""
    import datetime

    from spot.errors import check_type

    check(every_minutes is None or every_n_steps is None, "checkpoint",
          "set every_minutes or every_n_steps, not both (null the other)")
    if every_n_steps is not None:
        check_type(every_n_steps, int, "checkpoint.every_n_steps")
        check(every_n_steps >= 1, "checkpoint.every_n_steps", f"must be at least 1, got {every_n_steps}")
        return {"every_n_train_steps": every_n_steps}
    if every_minutes is not None:
        check_type(every_minutes, (int, float), "checkpoint.every_minutes")
        check(every_minutes > 0, "checkpoint.every_minutes", f"must be positive, got {every_minutes}")
        return {"train_time_interval": datetime.timedelta(minutes=every_minutes)}
    return None
