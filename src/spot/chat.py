"""Turning a problem into the model's prompt text: the one place where chat templates are applied.

Training (data.py), sampling (rectify) and evaluation all format prompts here, so a model sees the same
prompt shape in every stage.
"""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase


def prompt_text(tokenizer: PreTrainedTokenizerBase, prompt: str, enable_thinking: bool | None = None) -> str:
    """The user turn plus the generation prompt, or the bare prompt for tokenizers without a template.

    `enable_thinking=False` selects Qwen3's non-thinking mode (the paper's setting); None leaves the template's
    default. Templates that do not know the variable ignore it.
    """
    if not getattr(tokenizer, "chat_template", None):
        return prompt
    extra = {} if enable_thinking is None else {"enable_thinking": enable_thinking}
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True, **extra
    )


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: str, enable_thinking: bool | None = None) -> list[int]:
    """Token ids of `prompt_text`. A chat template already carries its special tokens, so none are added."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    text = prompt_text(tokenizer, prompt, enable_thinking)
    return tokenizer(text, add_special_tokens=not has_template)["input_ids"]


def completion_ids(tokenizer: PreTrainedTokenizerBase, completion: str) -> list[int]:
    """Token ids of a completion, closed with the end-of-sequence token the model must learn to emit."""
    ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return ids + [tokenizer.eos_token_id]
