"""Batched sampling from a causal LM with left padding: used by the data step and by evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from spot.chat import ChatFormat
from spot.errors import check, check_type


@dataclass(frozen=True)
class Sampling:
    """Decoding settings. temperature 0 means greedy; the paper samples at 0.7 / top_p 0.8 / top_k 20."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "top_k", "batch_size"):
            check_type(getattr(self, name), int, f"sampling.{name}")
        for name in ("temperature", "top_p"):
            check_type(getattr(self, name), (int, float), f"sampling.{name}")
        for name, ok, rule in (("max_new_tokens", self.max_new_tokens >= 1, "at least 1"),
                               ("temperature", self.temperature >= 0, "0 (greedy) or more"),
                               ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
                               ("top_k", self.top_k >= 0, "0 (off) or more"),
                               ("batch_size", self.batch_size >= 1, "at least 1")):
            check(ok, f"sampling.{name}", f"must be {rule}, got {getattr(self, name)!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    chat: ChatFormat,
    problems: list[str],
    sampling: Sampling = Sampling(),
    seed: int = 0,
    progress: bool = True,
    desc: str = "generate",
    template: str | None = None,
) -> list[str]:
    """One completion per problem, in the problems' order, special tokens stripped. Each problem is formatted
    by `chat` (with `template` in place of the model's problem template when given).

    Prompts are sorted by length before batching so that a batch wastes little on padding.
    """
    tokenizer = chat.tokenizer
    encoded = [chat.prompt_ids(p, template) for p in problems]
    order = sorted(range(len(problems)), key=lambda i: len(encoded[i]))
    out: list[str] = [""] * len(problems)
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    greedy = sampling.greedy
    bar = tqdm(total=len(problems), desc=desc, disable=not progress, unit="prompt")
    for start in range(0, len(order), sampling.batch_size):
        idx = order[start : start + sampling.batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # left padding: the prompts end where generation starts
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        new = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=sampling.max_new_tokens,
            do_sample=not greedy,
            temperature=None if greedy else sampling.temperature,
            top_p=None if greedy else sampling.top_p,
            top_k=None if greedy else (sampling.top_k or None),
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )[:, width:]
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(new[row], skip_special_tokens=True)
        bar.update(len(idx))
    bar.close()
    model.train(was_training)
    return out
