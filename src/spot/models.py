"""Loading a policy and its tokenizer: a Hugging Face id, a local directory, or the shipped toy base."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from spot.errors import ConfigError, UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelLoadError(UserError):
    """model.path names neither a saved model directory nor a reachable hub id."""


def _load(loader, path: str, what: str, **kwargs):
    local = Path(path)
    if local.exists() and not (local / "config.json").exists():
        raise ModelLoadError(f"model.path={path}: the directory has no config.json; point it at a directory "
                             "written by save_pretrained, or at a Hugging Face id")
    try:
        return loader(path, **kwargs)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"model.path={path}: cannot load the {what} ({first[:200]}). The toy base is "
                             "assets/toy-base (rebuild: python -m spot.toy.pretrain --out assets/toy-base)") from e


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    tokenizer = _load(AutoTokenizer.from_pretrained, path, "tokenizer")
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32") -> PreTrainedModel:
    if dtype not in DTYPES:
        raise ConfigError(f"model.dtype: {dtype!r} is not one of {sorted(DTYPES)}")
    return _load(AutoModelForCausalLM.from_pretrained, path, "model", dtype=DTYPES[dtype])
