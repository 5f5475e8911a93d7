"""The toy world's held-out suites and its answer check, built on the project's `Suite` and `Verdict`.

    eval=toy          -> toy_in_domain, toy_ood and the prior-task suites (conf/eval/toy.yaml)
    eval=[toy,toy_val] adds toy_val_in_domain (group `val`) for choosing hyperparameters without the test set

Every item comes from its own seeded stream (spot.toy.tasks.split_rng), so a suite's items do not depend on
which other suites are selected or how large they are.
"""

from __future__ import annotations

from spot.answers import Verdict, exact_match
from spot.evaluate.suites import Suite
from spot.toy.tasks import (
    FACTS,
    IN_DOMAIN,
    OOD,
    PRIOR_TASKS,
    Problem,
    extract_answer,
    fact_example,
    make_prior,
    make_problem,
    split_rng,
)

PARTS = ("in_domain", "ood", "prior", "val")


class ToyVerifier:
    """Correct when the text after the last `#### ` equals the reference exactly (spot.toy.tasks)."""

    name = "toy"

    def __call__(self, completion: str, answer: str) -> Verdict:
        return exact_match(extract_answer(completion), answer)


def toy_test_problems(n: int, seed: int = 0, ood: bool = False, split: str | None = None) -> list[Problem]:
    rng = split_rng(seed, split or ("ood" if ood else "test"))
    return [make_problem(rng, OOD if ood else IN_DOMAIN) for _ in range(n)]


def _problem_suite(name: str, group: str, problems: list[Problem], max_new_tokens: int) -> Suite:
    return Suite(name, group, [p.text for p in problems], [str(p.answer) for p in problems], ToyVerifier(),
                 max_new_tokens=max_new_tokens)


def toy_suites(n_in_domain: int = 1000, n_ood: int = 500, n_prior: int = 200, seed: int = 0,
               max_new_tokens: int | None = None, n_val: int = 0) -> list[Suite]:
    """In-domain test, OOD, and one suite per prior task, each with a budget that fits its answers;
    `max_new_tokens` replaces them all (quick checks on untrained models). `n_val` adds `toy_val_in_domain`
    (group `val`): in-domain problems from their own stream, disjoint from the train and test streams."""
    suites = [  # in-domain's budget leaves room for the direct (SFT) style's longer lines
        _problem_suite("toy_in_domain", "in_domain", toy_test_problems(n_in_domain, seed), 128),
        _problem_suite("toy_ood", "ood", toy_test_problems(n_ood, seed, ood=True), 192),
    ]
    if n_val:
        suites.append(_problem_suite("toy_val_in_domain", "val", toy_test_problems(n_val, seed, split="val"), 128))
    for task in PRIOR_TASKS:
        rng = split_rng(seed, f"prior-test/{task}")
        items = [make_prior(rng, task) for _ in range(n_prior)]
        if task == "fact":  # a closed table: test each fact once (all 32 unless n_prior is smaller)
            items = [fact_example(name, food) for name, food in FACTS[:n_prior]]
        suites.append(Suite(f"toy_prior_{task}", "prior", [q for q, _ in items],
                            [extract_answer(c) for _, c in items], ToyVerifier(), max_new_tokens=16))
    for suite in suites if max_new_tokens else []:
        suite.max_new_tokens = max_new_tokens
    return [s for s in suites if s.prompts]


def toy_suite(part: str, n: int, seed: int = 0, n_samples: int = 1, max_new_tokens: int | None = None
              ) -> list[Suite]:
    """One part of the held-out suites, as conf/eval/toy_<part>.yaml selects it: in_domain, ood, prior (one
    suite per prior task) or val."""
    sizes = {"in_domain": (n, 0, 0, 0), "ood": (0, n, 0, 0), "prior": (0, 0, n, 0), "val": (0, 0, 0, n)}
    if part not in sizes:
        from spot.errors import ConfigError

        raise ConfigError(f"toy suite part={part!r}: use one of {', '.join(PARTS)}")
    n_in, n_ood, n_prior, n_val = sizes[part]
    suites = [s for s in toy_suites(n_in, n_ood, n_prior, seed=seed, max_new_tokens=max_new_tokens, n_val=n_val)
              if s.group == part]
    for s in suites:
        s.n_samples = n_samples
    return suites
