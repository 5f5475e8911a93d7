"""The toy world's problems to rectify: in-domain problems from the train stream (rectify's problems=toy)."""

from __future__ import annotations

from spot.rectify.problems import Item
from spot.toy.suites import toy_test_problems
from spot.toy.tasks import IN_DOMAIN, make_problem, split_rng


def toy_items(n: int = 4000, seed: int = 0, n_test: int = 1000) -> list[Item]:
    """`n` in-domain toy problems from the train stream, none of whose prompts is in the held-out test set."""
    held_out = {p.text for p in toy_test_problems(n_test, seed)}
    rng = split_rng(seed, "train")
    items: list[Item] = []
    while len(items) < n:
        p = make_problem(rng, IN_DOMAIN)
        if p.text not in held_out:
            items.append(Item(id=f"toy-{seed}-{len(items)}", prompt=p.text, answer=str(p.answer)))
    return items
