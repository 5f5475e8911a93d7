"""A suite is a named list of prompts with reference answers, a group, and a scoring function.

Groups: "in_domain" (what post-training targets), "ood" (same skill, harder), "prior" (knowledge the base had
that post-training must not destroy). Forgetting is measured on "prior". A suite holds the raw problems;
the chat format (spot.chat.ChatFormat) turns them into prompts, with the suite's own `template` when it has
one and the model's problem template otherwise, so training and evaluation see one prompt shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spot.answers import Verdict


@dataclass
class Suite:
    name: str
    group: str
    prompts: list[str]
    answers: list  # reference answers: strings, or structured checks (IFEval's instruction lists)
    score: Callable[[str, object], Verdict]  # (completion, answer) -> Verdict
    max_new_tokens: int = 64
    n_samples: int = 1  # completions per prompt; the score is their mean accuracy (avg@N)
    meta: list[dict] | None = None  # per-item extras kept in the per-sample records (source line, gold index)
    template: str | None = None  # "{prompt}" wrapper for this suite; None: the model's problem template

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.answers):
            raise ValueError(f"suite {self.name}: {len(self.prompts)} prompts but {len(self.answers)} answers")
        if self.meta is not None and len(self.meta) != len(self.prompts):
            raise ValueError(f"suite {self.name}: {len(self.prompts)} prompts but {len(self.meta)} meta rows")
        if self.n_samples < 1:
            raise ValueError(f"suite {self.name}: n_samples must be at least 1, got {self.n_samples}")
