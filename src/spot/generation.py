"""Decoding settings, and `generate`: problems in, completions out, through the chosen engine (spot.engines)."""

from __future__ import annotations

from dataclasses import dataclass

from spot.chat import ChatFormat
from spot.engines.base import Arrived
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

    def describe(self) -> str:
        """How completions are drawn, for table captions: "greedy" or the sampling settings."""
        if self.greedy:
            return "greedy"
        return f"temperature {self.temperature:g}, top-p {self.top_p:g}" + (f", top-k {self.top_k}" if self.top_k
                                                                            else "")


def generate(
    engine,
    chat: ChatFormat,
    problems: list[str],
    sampling: Sampling = Sampling(),
    seed: int = 0,
    progress: bool = True,
    desc: str = "generate",
    template: str | None = None,
    positions: list[int] | None = None,
    on_done: Arrived | None = None,
) -> list[str]:
    """One completion per problem, in the problems' order, special tokens stripped. Each problem is formatted
    by `chat` (with `template` in place of the model's problem template when given) and completed by `engine`
    (spot.engines.base.Engine; a model in memory is completed by spot.engines.hf.HFEngine(model, tokenizer)).
    `positions` and `on_done` go to the engine: the seeds' places, and a hook for what arrives."""
    prompts = [chat.prompt_ids(p, template) for p in problems]
    return engine.complete(prompts, sampling, seed=seed, progress=progress, desc=desc, positions=positions,
                           on_done=on_done)
