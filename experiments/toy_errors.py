"""What kind of mistake each policy makes first on the toy in-domain test problems (spot.toy.tasks.first_error).

    python experiments/toy_errors.py assets/toy-base multirun/<date>/<time>/*_bco multirun/<date>/<time>/*_sft_plus

A run directory is read from its samples.jsonl (the trained policy's greedy answers, written by train.py); a
model directory (one with config.json) is sampled greedily on the first --n test problems. Prints one row per
source: the share of answers by first error (sign = operator does not match the verb, arithmetic = wrong result,
..., none = every step right). Every source answers the same first --n test problems (run directories hold all
1000 of the default evaluation).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from spot.chat import ChatFormat
from spot.toy.tasks import ERROR_KINDS, first_error, parse_problem


def from_run(run: Path, n: int) -> list[tuple[str, str]]:
    path = run / "samples.jsonl"
    if not path.exists():
        sys.exit(f"error: {path} not found (a train.py run directory writes it after evaluation)")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    pairs = [(r["prompt"], r["completion"]) for r in rows if r["suite"] == "toy_in_domain" and r["sample"] == 0]
    return pairs[:n]


def from_model(path: Path, n: int) -> list[tuple[str, str]]:
    from spot.generation import Sampling, generate
    from spot.models import load_model, load_tokenizer
    from spot.toy.suites import toy_test_problems

    prompts = [p.text for p in toy_test_problems(n)]
    completions = generate(load_model(str(path)), ChatFormat(load_tokenizer(str(path))), prompts,
                           Sampling(max_new_tokens=128, batch_size=250), desc=path.name)
    return list(zip(prompts, completions))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", type=Path, help="run directories or model directories")
    ap.add_argument("--n", type=int, default=1000, help="test problems (the first n of the in-domain suite)")
    a = ap.parse_args()
    print("| source | n | " + " | ".join(ERROR_KINDS) + " |")
    print("|---|---|" + "---|" * len(ERROR_KINDS))
    for src in a.sources:
        answers = from_model(src, a.n) if (src / "config.json").exists() else from_run(src, a.n)
        kinds = Counter(first_error(parse_problem(q), c) for q, c in answers)
        shares = " | ".join(f"{100 * kinds[k] / len(answers):.1f}" for k in ERROR_KINDS)
        print(f"| {src} | {len(answers)} | {shares} |", flush=True)


if __name__ == "__main__":
    main()
