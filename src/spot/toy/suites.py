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

PARTS = ("in_domain", "ood", "prior", "val", "ood_long", "ood_reworded", "ood_names")


class ToyVerifier:
    """Correct when the text after the last `#### ` equals the reference exactly (spot.toy.tasks)."""

    name = "toy"

    def __call__(self, completion: str, answer: str) -> Verdict:
        return exact_match(extract_answer(completion), answer)


def toy_test_problems(n: int, seed: int = 0, ood: bool = False, split: str | None = None) -> list[Problem]:
    rng = split_rng(seed, split or ("ood" if ood else "test"))
    level = OOD_LONG if split == "ood_long" else OOD if ood else IN_DOMAIN
    return [make_problem(rng, level) for _ in range(n)]


def _problem_suite(name: str, group: str, problems: list[Problem], max_new_tokens: int) -> Suite:
    return Suite(name, group, [p.text for p in problems], [str(p.answer) for p in problems], ToyVerifier(),
                 max_new_tokens=max_new_tokens)


def toy_suites(n_in_domain: int = 1000, n_ood: int = 500, n_prior: int = 200, seed: int = 0,
               max_new_tokens: int | None = None, n_val: int = 0, n_ood_long: int = 0, n_ood_reworded: int = 0,
               n_ood_names: int = 0) -> list[Suite]:
    """In-domain test, OOD, and one suite per prior task, each with a budget that fits its answers;
    `max_new_tokens` replaces them all (quick checks on untrained models). `n_val` adds `toy_val_in_domain`
    (group `val`): in-domain problems from their own stream, disjoint from the train and test streams;
    `n_ood_long`, `n_ood_reworded` and `n_ood_names` add `toy_ood_long`, `toy_ood_reworded` and `toy_ood_names`
    (groups of the same names, each its own stream)."""
    suites = [  # in-domain's budget leaves room for the direct (SFT) style's longer lines
        _problem_suite("toy_in_domain", "in_domain", toy_test_problems(n_in_domain, seed), 128),
        _problem_suite("toy_ood", "ood", toy_test_problems(n_ood, seed, ood=True), 192),
    ]
    if n_val:
        suites.append(_problem_suite("toy_val_in_domain", "val", toy_test_problems(n_val, seed, split="val"), 128))
    if n_ood_long:
        suites.append(_problem_suite("toy_ood_long", "ood_long", toy_test_problems(n_ood_long, seed, split="ood_long"),
                                     160))
    if n_ood_reworded:
        problems = toy_test_problems(n_ood_reworded, seed, split="ood_reworded")
        suites.append(Suite("toy_ood_reworded", "ood_reworded", [p.reworded_text for p in problems],
                            [str(p.answer) for p in problems], ToyVerifier(), max_new_tokens=128))
    if n_ood_names:
        rng = split_rng(seed, "ood_names")
        problems = [replace(make_problem(rng, IN_DOMAIN), name=rng.choice(NEW_NAMES), obj=rng.choice(NEW_OBJECTS))
                    for _ in range(n_ood_names)]
        suites.append(_problem_suite("toy_ood_names", "ood_names", problems, 128))
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
    sizes = {part: tuple(n if p == part else 0 for p in PARTS) for part in PARTS}
    if part not in sizes:
        from spot.errors import ConfigError

        raise ConfigError(f"toy suite part={part!r}: use one of {', '.join(PARTS)}")
    n_in, n_ood, n_prior, n_val, n_long, n_reworded, n_names = sizes[part]
    suites = [s for s in toy_suites(n_in, n_ood, n_prior, seed=seed, max_new_tokens=max_new_tokens, n_val=n_val,
                                    n_ood_long=n_long, n_ood_reworded=n_reworded, n_ood_names=n_names)
              if s.group == part]
    for s in suites:
        s.n_samples = n_samples
    return suites
