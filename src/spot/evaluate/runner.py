"""Generate on every suite, score, and summarise by group; forgetting = base minus trained on prior tasks."""

from __future__ import annotations

from dataclasses import replace

from spot.evaluate.suites import Suite
from spot.generation import Sampling, generate


def evaluate_suites(model, tokenizer, suites: list[Suite], sampling: Sampling, seed: int = 0,
                    progress: bool = True) -> tuple[dict[str, float], list[dict]]:
    """({suite: accuracy}, per-sample records). Accuracy is the mean over the suite's prompts."""
    accuracy, records = {}, []
    for suite in suites:
        s = replace(sampling, max_new_tokens=suite.max_new_tokens)
        completions = generate(model, tokenizer, suite.prompts, s, seed=seed, progress=progress,
                               desc=f"eval {suite.name}")
        correct = [suite.score(c, a) for c, a in zip(completions, suite.answers)]
        accuracy[suite.name] = sum(correct) / len(correct)
        records += [{"suite": suite.name, "prompt": p, "answer": a, "completion": c, "correct": ok}
                    for p, a, c, ok in zip(suite.prompts, suite.answers, completions, correct)]
    return accuracy, records


def group_means(accuracy: dict[str, float], suites: list[Suite]) -> dict[str, float]:
    """Plain mean of suite accuracies within each group (in_domain, ood, prior, ...)."""
    groups: dict[str, list[float]] = {}
    for suite in suites:
        if suite.name in accuracy:
            groups.setdefault(suite.group, []).append(accuracy[suite.name])
    return {g: sum(v) / len(v) for g, v in groups.items()}


def compare(base: dict[str, float], trained: dict[str, float]) -> dict[str, float]:
    """Trained minus base for every group, plus forgetting = base minus trained on `prior`."""
    out = {f"delta_{g}": trained[g] - base[g] for g in base if g in trained}
    if "prior" in base and "prior" in trained:
        out["forgetting"] = base["prior"] - trained["prior"]
    return out
