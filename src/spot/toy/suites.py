"""The toy world's held-out suites and its answer check, built on the project's `Suite` and `Verdict`.

    eval=toy          -> toy_in_domain, toy_ood and the prior-task suites (conf/eval/toy.yaml)
    eval=[toy,toy_val] adds toy_val_in_domain (group `val`) for choosing hyperparameters without the test set
    eval=[toy,toy_ood_long] adds toy_ood_long (group `ood_long`): 5-step chains in the in-domain number range,
                       one step longer than anything trained on; toy_ood_reworded (group `ood_reworded`): in-domain
                       chains told in other words; toy_ood_names (group `ood_names`): in-domain chains about
                       names and objects never seen (candidate OOD splits of experiments/study)

Every item comes from its own seeded stream (spot.toy.tasks.split_rng), so a suite's items do not depend on
which other suites are selected or how large they are.
"""

from __future__ import annotations

from dataclasses import replace

from spot.answers import Verdict, exact_match
from spot.evaluate.suites import Suite
from spot.toy.tasks import (
    FACTS,
    IN_DOMAIN,
    NEW_NAMES,
    NEW_OBJECTS,
    OOD,
    OOD_LONG,
    PRIOR_TASKS,
    Problem,
    extract_answer,
    fact_example,
    make_prior,
    make_problem,
    split_rng,
)


class ToyVerifier:
    """Correct when the text after the last `#### ` equals the reference exactly (spot.toy.tasks)."""

    name = "toy"

    def __call__(self, completion: str, answer: str) -> Verdict:
        return exact_match(extract_answer(completion), answer)


def toy_test_problems(n: int, seed: int = 0, ood: bool = False, split: str | None = None) -> list[Problem]:
    rng = split_rng(seed, split or ("ood" if ood else "test"))
    return [make_problem(rng, OOD if ood else IN_DOMAIN) for _ in range(n)]


def _problem_suite(name: str, group: str, problems: list[Problem], max_new_tokens: int, reworded: bool = False
                   ) -> Suite:
    return Suite(name, group, [p.reworded_text if reworded else p.text for p in problems],
                 [str(p.answer) for p in problems], ToyVerifier(), max_new_tokens=max_new_tokens)


def _long_problems(n: int, seed: int) -> list[Problem]:
    rng = split_rng(seed, "ood_long")
    return [make_problem(rng, OOD_LONG) for _ in range(n)]


def _names_problems(n: int, seed: int) -> list[Problem]:
    rng = split_rng(seed, "ood_names")
    return [replace(make_problem(rng, IN_DOMAIN), name=rng.choice(NEW_NAMES), obj=rng.choice(NEW_OBJECTS))
            for _ in range(n)]


# The optional splits, each from its own stream: part -> (suite name, its problems, worded otherwise, token budget).
# The part is the suite's group.
SPLITS = {
    "val": ("toy_val_in_domain", lambda n, seed: toy_test_problems(n, seed, split="val"), False, 128),
    "ood_long": ("toy_ood_long", _long_problems, False, 160),
    "ood_reworded": ("toy_ood_reworded", lambda n, seed: toy_test_problems(n, seed, split="ood_reworded"), True, 128),
    "ood_names": ("toy_ood_names", _names_problems, False, 128),
}


def toy_suites(n_in_domain: int = 1000, n_ood: int = 500, n_prior: int = 200, seed: int = 0,
               max_new_tokens: int | None = None, n_val: int = 0, splits: dict[str, int] | None = None
               ) -> list[Suite]:
    """In-domain test, OOD, and one suite per prior task, each with a budget that fits its answers;
    `max_new_tokens` replaces them all (quick checks on untrained models). `n_val` adds `toy_val_in_domain`
    (group `val`): in-domain problems from their own stream, disjoint from the train and test streams;
    `splits` ({part: n}) adds any other of SPLITS (toy_ood_long, toy_ood_reworded, toy_ood_names)."""
    suites = [  # in-domain's budget leaves room for the direct (SFT) style's longer lines
        _problem_suite("toy_in_domain", "in_domain", toy_test_problems(n_in_domain, seed), 128),
        _problem_suite("toy_ood", "ood", toy_test_problems(n_ood, seed, ood=True), 192),
    ]
    for part, n in {"val": n_val, **(splits or {})}.items():
        if n:
            name, draw, reworded, budget = SPLITS[part]
            suites.append(_problem_suite(name, part, draw(n, seed), budget, reworded))
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


PARTS = ("in_domain", "ood", "prior", *SPLITS)


def toy_suite(part: str, n: int, seed: int = 0, n_samples: int = 1, max_new_tokens: int | None = None
              ) -> list[Suite]:
    """One part of the held-out suites, as conf/eval/toy_<part>.yaml selects it: in_domain, ood, prior (one
    suite per prior task), val, or another of SPLITS."""
    if part not in PARTS:
        from spot.errors import ConfigError

        raise ConfigError(f"toy suite part={part!r}: use one of {', '.join(PARTS)}")
    base = {"n_in_domain": 0, "n_ood": 0, "n_prior": 0}
    if part in SPLITS:
        sizes = {**base, "splits": {part: n}}
    else:
        sizes = {**base, {"in_domain": "n_in_domain", "ood": "n_ood", "prior": "n_prior"}[part]: n}
    suites = [s for s in toy_suites(**sizes, seed=seed, max_new_tokens=max_new_tokens) if s.group == part]
    for s in suites:
        s.n_samples = n_samples
    return suites
