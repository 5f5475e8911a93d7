"""What kind of mistake each policy makes first on the toy in-domain test problems (spot.toy.tasks.first_error).

    python experiments/toy_errors.py assets/toy-base multirun/<date>/<time>/*_bco multirun/<date>/<time>/*_sft_plus

A run directory is read from its samples.jsonl (the trained policy's greedy answers, written by train.py); a
model directory (one with config.json) is sampled greedily on the first --n test problems. Prints one row per
source: the share of answers by first error (sign = operator does not match the verb, arithmetic = wrong result,
..., none = every step right). Every source answers the same first --n test problems (run directories hold all
1000 of the default evaluation).

    python experiments/toy_errors.py assets/toy-base assets/study-v0 --samples 8 --n 200

With --samples K (model directories only), each source also answers every problem K times at temperature 1.0,
and its sampled wrong answers are split into *slips* (the greedy answer to that problem is right: the model knows
the rule and missed it on this sample) and *systematic* errors (greedy is wrong too); the first-error shares
are then those of the sampled answers (experiments/study/PROTOCOL.md, "Which kind of error a base makes").
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


def from_model(path: Path, n: int, samples: int = 0) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """Greedy answers to the first n test problems, and `samples` answers each at temperature 1.0."""
    from spot.engines.hf import HFEngine
    from spot.generation import Sampling, generate
    from spot.models import load_model, load_tokenizer
    from spot.toy.suites import toy_test_problems

    prompts = [p.text for p in toy_test_problems(n)]
    tokenizer = load_tokenizer(str(path))
    model, chat = HFEngine(load_model(str(path)), tokenizer), ChatFormat(tokenizer)
    completions = generate(model, chat, prompts, Sampling(max_new_tokens=128, batch_size=250), desc=path.name)
    sampled = [generate(model, chat, prompts, Sampling(max_new_tokens=128, temperature=1.0, batch_size=250),
                        seed=1 + k, desc=f"{path.name} sample {k + 1}/{samples}") for k in range(samples)]
    return list(zip(prompts, completions)), [list(c) for c in zip(*sampled)] if sampled else []


def slip_shares(greedy: list[tuple[str, str]], sampled: list[list[str]]) -> dict[str, float]:
    """Greedy and sampled accuracy, and the shares of sampled wrong answers on problems greedy gets right (slips)
    and wrong (systematic)."""
    right = [first_error(parse_problem(q), c) == "none" for q, c in greedy]
    wrong_on = {"slip": 0, "systematic": 0}
    total = correct = 0
    for (q, _), ok, outs in zip(greedy, right, sampled):
        for c in outs:
            total += 1
            if first_error(parse_problem(q), c) == "none":
                correct += 1
            else:
                wrong_on["slip" if ok else "systematic"] += 1
    n_wrong = max(1, total - correct)
    return {"greedy_accuracy": sum(right) / len(right), "sampled_accuracy": correct / total,
            "slip": wrong_on["slip"] / n_wrong,
            "systematic": wrong_on["systematic"] / n_wrong}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sources", nargs="+", type=Path, help="run directories or model directories")
    ap.add_argument("--n", type=int, default=1000, help="test problems (the first n of the in-domain suite)")
    ap.add_argument("--samples", type=int, default=0, help="answers per problem at temperature 1.0 (models only)")
    a = ap.parse_args()
    if a.samples and not all((src / "config.json").exists() for src in a.sources):
        ap.error("--samples samples models: give model directories (with config.json), not run directories")
    extra = ["greedy acc", "sampled acc", "slip", "systematic"] if a.samples else []
    print("| source | n | " + " | ".join(list(ERROR_KINDS) + extra) + " |")
    print("|---|---|" + "---|" * (len(ERROR_KINDS) + len(extra)))
    for src in a.sources:
        sampled: list[list[str]] = []
        if (src / "config.json").exists():
            answers, sampled = from_model(src, a.n, a.samples)
        else:
            answers = from_run(src, a.n)
        scored = [(q, c) for (q, _), outs in zip(answers, sampled) for c in outs] if sampled else answers
        kinds = Counter(first_error(parse_problem(q), c) for q, c in scored)
        cells = [f"{100 * kinds[k] / len(scored):.1f}" for k in ERROR_KINDS]
        if sampled:
            shares = slip_shares(answers, sampled)
            cells += [f"{100 * shares['greedy_accuracy']:.1f}", f"{100 * shares['sampled_accuracy']:.1f}",
                      f"{100 * shares['slip']:.1f}", f"{100 * shares['systematic']:.1f}"]
        print(f"| {src} | {len(answers)} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
