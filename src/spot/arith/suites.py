"""The arith world's held-out suites, built on the project's `Suite` (conf/eval/arith*.yaml).

    eval=arith            -> arith_in_domain (group in_domain), arith_ood (ood), arith_prior (prior)
    eval=[arith,arith_val] adds arith_val (group val) for choosing hyperparameters without the test set

In-domain and validation problems are of the suite's `level` (the pilot's choice); OOD problems are chains of
the same level 1 to `extra_steps` steps longer than its longest (`spot.arith.tasks.longer`). Each suite draws
from its own seeded stream and hash share of stories (`spot.arith.tasks.draw_problems`), so its items do not
depend on which other suites are selected or how large they are, and no training story is among them.

Token budgets (`max_new_tokens`) fit the step format with room for a chatty small model: a step written as a
sentence with its calculation ("She buys 5 more, so 12 + 5 = 17 apples.") is at most about 30 tokens, so 6 steps
(L5's longest) and a preamble and answer line fit in 256; OOD's 8 steps in 384. A prior reply asks for at most
50 words or 3 bullet points (under 100 tokens): 256 lets an overlong reply still end where its checks look.
"""

from __future__ import annotations

from collections.abc import Mapping

from spot.arith.checker import ArithVerifier
from spot.arith.prior import prior_items
from spot.arith.tasks import draw_problems, level_of, longer
from spot.errors import ConfigError
from spot.evaluate.scorers import IFEvalScorer
from spot.evaluate.suites import Suite

# part -> (suite name, group, the stream and share it draws from, default token budget)
PARTS = {
    "in_domain": ("arith_in_domain", "in_domain", "test", 256),
    "val": ("arith_val", "val", "val", 256),
    "ood": ("arith_ood", "ood", "ood", 384),
}


def arith_suite(part: str, n: int, level: str | Mapping, seed: int = 0, extra_steps: int = 2, n_samples: int = 1,
                max_new_tokens: int | None = None, instruction: str = "plain") -> Suite:
    """One held-out suite: `part` in_domain, val or ood, `n` problems of `level` (a name of
    spot.arith.tasks.LEVELS or a mapping of Level's fields); OOD chains are longer by 1 to `extra_steps`;
    `instruction` names the prompt's step-format instruction (spot.arith.tasks.INSTRUCTIONS)."""
    if part not in PARTS:
        raise ConfigError(f"arith suite part={part!r}: use one of {', '.join(PARTS)}")
    name, group, split, budget = PARTS[part]
    label, spec = level_of(level)
    if part == "ood":
        spec = longer(spec, extra_steps)
    problems = draw_problems(split, n, seed, spec)
    return Suite(name, group, [p.prompt_with(instruction) for p in problems], [str(p.answer) for p in problems],
                 ArithVerifier(), max_new_tokens=max_new_tokens or budget, n_samples=n_samples,
                 meta=[{"level": label, "steps": len(p.ops)} for p in problems])


def arith_prior_suite(n: int = 240, seed: int = 0, n_samples: int = 1, max_new_tokens: int = 256,
                      loose: bool = False) -> Suite:
    """The non-math prior probe (group prior): IFEval-shaped items scored with lm-eval's IFEval checks."""
    rows = prior_items(n, seed)
    return Suite("arith_prior", "prior", [r["prompt"] for r in rows], rows, IFEvalScorer(loose),
                 max_new_tokens=max_new_tokens, n_samples=n_samples, template="{prompt}")
