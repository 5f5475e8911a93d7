"""The arith world's problems to rectify (rectify's problems=arith): training problems of the chosen level."""

from __future__ import annotations

from collections.abc import Mapping

from spot.arith.tasks import draw_problems, level_of
from spot.rectify.problems import Item


def arith_items(level: str | Mapping, n: int = 1000, seed: int = 0, instruction: str = "plain") -> list[Item]:
    """`n` problems of `level` from the train stream; the training share of stories has no story of any
    validation or test suite (spot.arith.tasks.BUCKETS), for any seed and size."""
    _, spec = level_of(level)
    return [Item(id=f"arith-{seed}-{k}", prompt=p.prompt_with(instruction), answer=str(p.answer))
            for k, p in enumerate(draw_problems("train", n, seed, spec))]
