"""Generate on every suite, score, and summarise by group; forgetting = base minus trained on prior tasks.

A suite with `n_samples = N` is answered N times per prompt and scored by the mean accuracy over all
N x prompts completions (the paper's avg@N). Greedy decoding gives the same completion N times, so it is
answered once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from spot.evaluate.suites import Suite
from spot.generation import Sampling, generate
from spot.rectify.verify import Verdict


def as_verdict(result) -> Verdict:
    """Scorers return a bool (toy exact match) or a Verdict (math-verify, choices, IFEval)."""
    return result if isinstance(result, Verdict) else Verdict(bool(result), None)


def samples_per_prompt(suite: Suite, sampling: Sampling) -> int:
    return 1 if sampling.temperature <= 0 else suite.n_samples


@dataclass
class SuiteResult:
    name: str
    group: str
    accuracy: float  # mean over every (prompt, sample): avg@n_samples
    n_questions: int
    n_samples: int
    seconds: float
    max_new_tokens: int = 0
    records: list[dict] = field(default_factory=list, repr=False)

    @property
    def metric(self) -> str:
        return f"avg@{self.n_samples}"

    def summary(self) -> dict:
        return {"group": self.group, "accuracy": self.accuracy, "metric": self.metric,
                "n_questions": self.n_questions, "n_samples": self.n_samples, "max_new_tokens": self.max_new_tokens,
                "seconds": self.seconds}


def evaluate_suite(model, tokenizer, suite: Suite, sampling: Sampling, seed: int = 0,
                   progress: bool = True) -> SuiteResult:
    """Every prompt answered `n` times (copies sit next to each other, so one batch samples them together)."""
    t0 = time.time()
    n = samples_per_prompt(suite, sampling)
    prompts = [p for p in suite.prompts for _ in range(n)]
    desc = f"eval {suite.name}" + (f" avg@{n}" if n > 1 else "")
    completions = generate(model, tokenizer, prompts, replace(sampling, max_new_tokens=suite.max_new_tokens),
                           seed=seed, progress=progress, desc=desc)
    records = []
    for k, completion in enumerate(completions):
        q = k // n
        verdict = as_verdict(suite.score(completion, suite.answers[q]))
        records.append({"suite": suite.name, "question": q, "sample": k % n, "prompt": suite.prompts[q],
                        "answer": suite.answers[q], "completion": completion, "correct": verdict.correct,
                        "predicted": verdict.predicted, "note": verdict.note,
                        **({"meta": suite.meta[q]} if suite.meta else {})})
    accuracy = sum(r["correct"] for r in records) / max(1, len(records))
    return SuiteResult(suite.name, suite.group, accuracy, len(suite.prompts), n, round(time.time() - t0, 2),
                       suite.max_new_tokens, records)


def evaluate_suites(model, tokenizer, suites: list[Suite], sampling: Sampling, seed: int = 0,
                    progress: bool = True) -> tuple[dict[str, float], list[dict]]:
    """({suite: accuracy}, per-sample records). Accuracy is the mean over the suite's prompts and samples."""
    accuracy, records = {}, []
    for suite in suites:
        result = evaluate_suite(model, tokenizer, suite, sampling, seed=seed, progress=progress)
        accuracy[suite.name] = result.accuracy
        records += result.records
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


def suite_changes(base: dict[str, float], trained: dict[str, float]) -> dict[str, float]:
    """Every suite's change against the base model (trained minus base), for suites both were scored on."""
    return {name: trained[name] - base[name] for name in trained if name in base}
