"""Loading a policy and its tokenizer (a Hugging Face id, a local directory, or the shipped toy base), saving
it when training is done, and identifying its weights without reading them."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from spot.errors import ConfigError, UserError, first_line
from spot.lora import has_adapters
from spot.preflight import check_attention
from spot.rows import atomic_directory

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(UserError):
    """model.path names neither a saved model directory nor a reachable hub id."""


def _load(loader, path: str, what: str, **kwargs):
    local = Path(path)
    if local.exists() and not (local / "config.json").exists():
        raise ModelLoadError(f"model.path={path}: the directory has no config.json; point it at a directory "
                             "written by save_pretrained, or at a Hugging Face id")
    if not local.exists():
        from spot.hub import check_local_model, check_reachable

        try:
            check_local_model(path)
        except UserError as e:
            raise ModelLoadError(str(e)) from None
        check_reachable(path, "model.path")
    try:
        return loader(path, **kwargs)
    except OSError as e:
        where = "" if local.exists() else "no local directory of that name, and as a hub id: "
        raise ModelLoadError(f"model.path={path}: {where}cannot load the {what} ({first_line(e, 200)}). The toy "
                             "base is assets/toy-base (rebuild: python -m spot.toy.pretrain --out assets/toy-base)"
                             ) from e


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    tokenizer = _load(AutoTokenizer.from_pretrained, path, "tokenizer")
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_config(path: str):
    """The model's transformers config alone (config.json: no weights read)."""
    return _load(AutoConfig.from_pretrained, path, "model config")


def load_model(path: str, dtype: str = "float32", attn_implementation: str | None = None) -> PreTrainedModel:
    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype: {dtype!r} is not one of {sorted(DTYPES)}")
    check_attention(attn_implementation)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return _load(AutoModelForCausalLM.from_pretrained, path, "model", dtype=DTYPES[dtype], **extra)


@dataclass(frozen=True)
class PolicySaver:
    """Where and how the trained policy is written: `dir` (save_pretrained, sharded safetensors) in `dtype`.

    Full fine-tuning: `dir` holds the whole policy. With LoRA adapters, `adapter_dir` (beside it) holds them
    (peft's format), and with `merge` `dir` holds the base with the adapters merged in.
    """

    dir: Path
    dtype: str | None = None   # None: the dtype the weights are held in
    max_shard_size: str = "5GB"
    merge: bool = True

    @property
    def adapter_dir(self) -> Path:
        return self.dir.with_name("adapter")

    def save(self, policy, tokenizer):
        """Writes the policy and returns the model to evaluate: the merged one when adapters are merged.

        Each directory is written whole or not at all (spot.rows.atomic_directory): a crash while saving
        leaves the previous policy, never half of one. The weights are cast tensor by tensor on the CPU, so
        fp32 master weights are written as bf16 without a second copy on the device; config.json then records
        the dtype written, not the one trained in.
        """
        if has_adapters(policy):
            with atomic_directory(self.adapter_dir) as staging:
                policy.save_pretrained(staging)
                tokenizer.save_pretrained(staging)
            if not self.merge:
                return policy
            policy = policy.merge_and_unload()
        dtype = DTYPES[self.dtype] if self.dtype else None
        state = {k: v.detach().to("cpu", dtype or v.dtype) for k, v in policy.state_dict().items()}
        with atomic_directory(self.dir) as staging:
            policy.save_pretrained(staging, state_dict=state, max_shard_size=self.max_shard_size)
            tokenizer.save_pretrained(staging)
            config_file = staging / "config.json"
            config = json.loads(config_file.read_text())
            if self.dtype and config.get("dtype") != self.dtype:  # save_pretrained wrote the in-memory dtype
                config["dtype"] = self.dtype
                config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        return policy


def weights_key(path: str, config=None) -> str | None:
    """A fingerprint of the weights at `path` read from file metadata, never from the weights themselves.

    A local directory: every weight file's name, size, modification time and safetensors header (tensor names,
    dtypes, shapes, offsets), so re-saving or replacing a file changes the key, and reading it costs
    milliseconds at any model size (hashing an 8B model's 16 GB took longer than scoring a small suite). A file
    edited in place to the same size with its mtime restored would keep the key: nothing in this project does
    that. A hub id: the commit its files were loaded from (`config._commit_hash`, when `config` is given).
    None when neither applies (then nothing is cached).
    """
    import hashlib

    p = Path(path)
    files = sorted([*p.glob("*.safetensors"), *p.glob("*.bin")]) if p.is_dir() else []
    if not files:
        commit = getattr(config, "_commit_hash", None) if config is not None else None
        return f"hub:{path}@{commit}" if commit else None
    h = hashlib.sha256()
    for f in files:
        stat = f.stat()
        h.update(f"{f.name}|{stat.st_size}|{stat.st_mtime_ns}|".encode())
        if f.suffix == ".safetensors":
            with f.open("rb") as fh:
                n = int.from_bytes(fh.read(8), "little")
                h.update(fh.read(min(n, 100_000_000)))
    return h.hexdigest()
