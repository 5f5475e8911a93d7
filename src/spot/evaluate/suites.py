"""A suite is a named list of prompts with reference answers, a group, and a scoring function.

Groups: "in_domain" (what post-training targets), "ood" (same skill, harder), "prior" (knowledge the base had
that post-training must not destroy). Forgetting is measured on "prior".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spot.toy.tasks import (
    FACTS,
    IN_DOMAIN,
    OOD,
    PRIOR_TASKS,
    extract_answer,
    fact_example,
    make_prior,
    make_problem,
    split_rng,
)


@dataclass
class Suite:
    name: str
    group: str
    prompts: list[str]
    answers: list  # reference answers: strings, or structured checks (IFEval's instruction lists)
    score: Callable[[str, object], object]  # (completion, answer) -> bool or spot.rectify.verify.Verdict
    max_new_tokens: int = 64
    n_samples: int = 1  # completions per prompt; the score is their mean accuracy (avg@N)
    meta: list[dict] | None = None  # per-item extras kept in the per-sample records (source line, gold index)

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.answers):
            raise ValueError(f"suite {self.name}: {len(self.prompts)} prompts but {len(self.answers)} answers")
        if self.meta is not None and len(self.meta) != len(self.prompts):
            raise ValueError(f"suite {self.name}: {len(self.prompts)} prompts but {len(self.meta)} meta rows")
        if self.n_samples < 1:
            raise ValueError(f"suite {self.name}: n_samples must be at least 1, got {self.n_samples}")


def toy_exact_match(completion: str, answer: str) -> bool:
    """Correct when the text after the last `#### ` equals the reference exactly."""
    return extract_answer(completion) == answer


def toy_test_problems(n: int, seed: int = 0, ood: bool = False, split: str | None = None) -> list:
    rng = split_rng(seed, split or ("ood" if ood else "test"))
    return [make_problem(rng, OOD if ood else IN_DOMAIN) for _ in range(n)]


def toy_suites(n_in_domain: int = 1000, n_ood: int = 500, n_prior: int = 200, seed: int = 0,
               max_new_tokens: int | None = None, n_val: int = 0) -> list[Suite]:
    """The toy world's held-out suites: in-domain test, OOD, and one suite per prior task. Each has a budget
    that fits its answers; `max_new_tokens` replaces them all (quick checks on untrained models).

    `n_val` adds `toy_val_in_domain` (group `val`): in-domain problems from their own stream, disjoint from the
    train and test streams, for choosing hyperparameters without looking at the test set."""
    test = toy_test_problems(n_in_domain, seed)
    ood = toy_test_problems(n_ood, seed, ood=True)
    suites = [
        Suite("toy_in_domain", "in_domain", [p.text for p in test], [str(p.answer) for p in test],
              toy_exact_match, max_new_tokens=128),  # room for the direct style's longer lines too
        Suite("toy_ood", "ood", [p.text for p in ood], [str(p.answer) for p in ood], toy_exact_match,
              max_new_tokens=192),
    ]
    if n_val:
        val = toy_test_problems(n_val, seed, split="val")
        suites.append(Suite("toy_val_in_domain", "val", [p.text for p in val], [str(p.answer) for p in val],
                            toy_exact_match, max_new_tokens=128))
    for task in PRIOR_TASKS:
        rng = split_rng(seed, f"prior-test/{task}")
        items = [make_prior(rng, task) for _ in range(n_prior)]
        if task == "fact":  # a closed table: test each fact once (all 32 unless n_prior is smaller)
            items = [fact_example(name, food) for name, food in FACTS[:n_prior]]
        suites.append(Suite(f"toy_prior_{task}", "prior", [q for q, _ in items],
                            [extract_answer(c) for _, c in items], toy_exact_match, max_new_tokens=16))
    for suite in suites if max_new_tokens else []:
        suite.max_new_tokens = max_new_tokens
    return suites
