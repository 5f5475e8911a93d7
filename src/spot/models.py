"""Loading a policy and its tokenizer: a Hugging Face id, a local directory, or the shipped toy base."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers ship without one
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(path: str, dtype: str = "float32") -> PreTrainedModel:
    """AutoModelForCausalLM.from_pretrained with a clear error when the path is neither a model nor an id."""
    if dtype not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r} is not one of {sorted(DTYPES)}")
    local = Path(path)
    if (local.is_absolute() or path.startswith(".")) and not (local / "config.json").exists():
        raise FileNotFoundError(
            f"model.path={path}: no config.json there; point model.path at a saved model directory "
            "or a Hugging Face id"
        )
    return AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
