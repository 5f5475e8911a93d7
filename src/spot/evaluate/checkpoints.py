"""What `model=` names for evaluation: a Hugging Face id or directory, a train.py run, or a Lightning .ckpt.

    Qwen/Qwen3-8B, assets/toy-base        loaded as they are
    outputs/<date>/<time>_bco             a train.py run: its policy/ (save_pretrained), else its LoRA adapter/
                                          on top of its base (model.lora.merge=false), else checkpoints/last.ckpt
    .../checkpoints/epoch=1-step=4.ckpt   state_dict keys `policy.*` on top of the base model that the run's
                                          .hydra/config.yaml names (model.path), or on top of `base=` when given

A run also names its base model, which evaluation compares against (forgetting) and uses as the reference
for the KL estimate. A checkpoint that does not load raises CheckpointError naming what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from spot.errors import UserError
from spot.models import DTYPES, ModelLoadError, load_model, load_tokenizer, weights_key


class CheckpointError(UserError):
    """A model, run or checkpoint that cannot be loaded for evaluation; the message says what is wrong."""


@dataclass(frozen=True)
class ModelSource:
    spec: str  # what the user passed
    kind: str  # "hf" | "run" | "ckpt"
    weights: str  # a save_pretrained directory or hub id: the model itself, or the skeleton for `ckpt`
    ckpt: str | None = None  # Lightning checkpoint whose policy.* tensors replace the skeleton's
    base: str | None = None  # the model the run was trained from
    dtype: str | None = None  # the run's model.dtype
    run_dir: str | None = None
    chat: dict | None = None  # the run's prompt format: {"enable_thinking", "problem_template"} it trained with
    adapter: str | None = None  # a peft adapter directory merged into `weights` on load


def run_config(run_dir: Path) -> dict:
    """The run's composed Hydra config, with model.path made absolute against the directory it ran in."""
    cfg_file = run_dir / ".hydra" / "config.yaml"
    if not cfg_file.exists():
        return {}
    cfg = yaml.safe_load(cfg_file.read_text()) or {}
    model = cfg.get("model") or {}
    path = model.get("path")
    hydra_file = run_dir / ".hydra" / "hydra.yaml"
    if path and not Path(path).is_absolute() and hydra_file.exists():
        cwd = ((yaml.safe_load(hydra_file.read_text()) or {}).get("hydra") or {}).get("runtime", {}).get("cwd")
        if cwd and (Path(cwd) / path).exists():
            model["path"] = str(Path(cwd) / path)
    return cfg


def chat_of(model_cfg: dict) -> dict:
    """The prompt-format settings a run's model config recorded (older runs recorded only enable_thinking)."""
    return {k: model_cfg[k] for k in ("enable_thinking", "problem_template") if k in model_cfg}


def latest_ckpt(run_dir: Path) -> Path | None:
    ckpts = sorted((run_dir / "checkpoints").glob("*.ckpt"), key=lambda p: (p.name != "last.ckpt", p.name))
    return ckpts[0] if ckpts else None


def resolve_source(spec: str, base: str | None = None) -> ModelSource:
    """Classify `spec`. `base` (a path or id) overrides the base model a run's config names."""
    p = Path(spec).expanduser()
    if p.suffix == ".ckpt":
        if not p.is_file():
            raise CheckpointError(f"model={spec}: no such checkpoint file")
        run_dir = p.parent.parent if p.parent.name == "checkpoints" else p.parent
        cfg = run_config(run_dir).get("model") or {}
        skeleton = base or cfg.get("path")
        if not skeleton:
            raise CheckpointError(f"model={spec}: cannot tell which base model the checkpoint was trained from "
                                  f"({run_dir / '.hydra/config.yaml'} is missing); pass base=<that model>")
        return ModelSource(spec, "ckpt", skeleton, str(p), skeleton, cfg.get("dtype"), str(run_dir), chat_of(cfg))
    is_run = p.is_dir() and ((p / ".hydra" / "config.yaml").exists() or (p / "metrics.json").exists())
    if is_run and not (p / "config.json").exists():
        cfg = run_config(p).get("model") or {}
        run_base = base or cfg.get("path")
        if (p / "policy" / "config.json").exists():
            return ModelSource(spec, "run", str(p / "policy"), None, run_base, cfg.get("dtype"), str(p), chat_of(cfg))
        if (p / "adapter" / "adapter_config.json").exists() and run_base:
            return ModelSource(spec, "adapter", run_base, None, run_base, cfg.get("dtype"), str(p), chat_of(cfg),
                               adapter=str(p / "adapter"))
        ckpt = latest_ckpt(p)
        if ckpt is None:
            raise CheckpointError(f"model={spec}: this train.py run has neither policy/ nor checkpoints/*.ckpt "
                                  "(did it finish? save_policy=false runs keep only checkpoints)")
        return resolve_source(str(ckpt), base)
    return ModelSource(spec, "hf", spec, base=base)


def weights_identity(source: ModelSource) -> str:
    """What weights `source` stands for, from file metadata (spot.models.weights_key): the model's files, or
    its hub commit, plus the checkpoint or the adapter applied on top. A hub id whose commit cannot be read
    (nothing cached) stands for itself."""
    from transformers import AutoConfig

    config = None
    if not Path(source.weights).is_dir():
        try:
            config = AutoConfig.from_pretrained(source.weights)
        except (OSError, ValueError):
            pass
    parts = [weights_key(source.weights, config) or f"hub:{source.weights}"]
    if source.ckpt:
        stat = Path(source.ckpt).stat()
        parts.append(f"{Path(source.ckpt).name}|{stat.st_size}|{stat.st_mtime_ns}")
    if source.adapter:
        parts.append(weights_key(source.adapter) or source.adapter)
    return "+".join(parts)


def auto_dtype(source: ModelSource) -> str:
    """The run's training dtype, else the dtype saved in the model's config, else float32."""
    if source.dtype in DTYPES:
        return source.dtype
    from transformers import AutoConfig

    try:
        saved = getattr(AutoConfig.from_pretrained(source.weights), "dtype", None)
    except OSError:
        return "float32"  # load_model will say what is wrong with the path
    names = {v: k for k, v in DTYPES.items()}
    if isinstance(saved, str):
        return saved if saved in DTYPES else "float32"
    return names.get(saved, "float32")


def policy_state(ckpt: str) -> dict[str, torch.Tensor]:
    """The `policy.*` tensors of a Lightning checkpoint, prefix removed. Loaded with weights_only: a
    checkpoint is data, and nothing in it gets to run code."""
    try:
        blob = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"checkpoint {ckpt} cannot be read: {first[:300]}") from None
    state = blob.get("state_dict") if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {ckpt} has no state_dict: not a Lightning checkpoint")
    policy = {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}
    if not policy:
        raise CheckpointError(f"checkpoint {ckpt} has no policy.* weights: not a train.py checkpoint")
    return policy


def apply_checkpoint(model: torch.nn.Module, ckpt: str, skeleton: str) -> None:
    state = policy_state(ckpt)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in state if k in own and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        detail = "; ".join(f"{what}: {len(keys)} e.g. {keys[0]}" for what, keys in
                           (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if keys)
        raise CheckpointError(f"checkpoint {ckpt} does not fit base model {skeleton} ({detail}); pass "
                              "base=<the model it was trained from>")
    model.load_state_dict(state)


def load_tokenizer_for(source: ModelSource):
    try:
        return load_tokenizer(source.weights)
    except ModelLoadError as e:
        raise CheckpointError(str(e)) from None


def load_for_eval(source: ModelSource, dtype: str = "auto"):
    """(model, tokenizer) in eval mode on the CPU. `dtype` auto: see `auto_dtype`."""
    dtype = auto_dtype(source) if dtype == "auto" else dtype
    try:
        tokenizer = load_tokenizer(source.weights)
        model = load_model(source.weights, dtype)
    except ModelLoadError as e:
        raise CheckpointError(str(e)) from None
    if source.ckpt:
        apply_checkpoint(model, source.ckpt, source.weights)
    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter).merge_and_unload()
    return model.eval(), tokenizer
