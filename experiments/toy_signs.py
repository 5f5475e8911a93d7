"""How sure each policy is of the right operator, verb by verb, on the toy in-domain test problems.

    python experiments/toy_signs.py assets/toy-base multirun/<date>/<time>/*_bco/policy

Teacher-forced on the house-style gold solution: at every step's operator (`+` or `-`) it reads the probability
the policy gives the right one, and averages it per verb ("loses", "finds", ...). A policy that learned which verbs
subtract is sure on every verb; one that only learned to prefer one operator is sure on half of them and unsure
on the rest. Sources are model directories (a train.py run keeps its policy in <run>/policy).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import torch

from spot.chat import ChatFormat
from spot.logps import token_logps
from spot.toy.tasks import Problem


@torch.no_grad()
def sign_probabilities(model, tokenizer, problems: list[Problem]) -> dict[str, list[float]]:
    """{verb: [P(right operator) at each step with that verb]} under teacher forcing on the gold solutions."""
    ops = {tokenizer.convert_tokens_to_ids(op) for op in "+-"}
    out: dict[str, list[float]] = defaultdict(list)
    chat = ChatFormat(tokenizer)
    for problem in problems:
        prompt, completion = chat.prompt_ids(problem.text), chat.completion_ids(problem.solution())
        ids = torch.tensor([prompt + completion])
        logp = token_logps(model(ids).logits[:, :-1], ids[:, 1:])[0]  # logp[i]: log p(token i + 1)
        positions = [j for j, t in enumerate(completion) if t in ops]
        # the n-th operator of the solution belongs to the n-th sentence's verb; a '-' inside a negative number
        # would break that alignment, so such problems are skipped rather than misread
        if len(positions) != len(problem.ops):
            continue
        for j, verb in zip(positions, problem.verbs):
            out[verb].append(logp[len(prompt) + j - 1].exp().item())
    return dict(out)


def main() -> None:
    from spot.models import load_model, load_tokenizer
    from spot.toy.suites import toy_test_problems

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", type=Path, help="model directories")
    ap.add_argument("--n", type=int, default=300, help="test problems (the first n of the in-domain suite)")
    a = ap.parse_args()
    problems = toy_test_problems(a.n)
    rows = []
    for src in a.sources:
        model = load_model(str(src)).eval()
        probs = sign_probabilities(model, load_tokenizer(str(src)), problems)
        rows.append((src, probs))
    verbs = sorted({v for _, probs in rows for v in probs})
    print("| source | all steps | " + " | ".join(verbs) + " |")
    print("|---|---|" + "---|" * len(verbs))
    for src, probs in rows:
        every = [p for ps in probs.values() for p in ps]
        cells = " | ".join(f"{sum(probs[v]) / len(probs[v]):.2f}" if probs.get(v) else "-" for v in verbs)
        print(f"| {src} | {sum(every) / len(every):.2f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
