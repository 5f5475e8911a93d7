"""Scoring a model on suites: the one path that train.py (base and trained policy), evaluate.py and the
evaluation callback all call.

A suite with `n_samples = N` is answered N times per problem and scored by the mean accuracy over all
N x problems completions (the paper's avg@N). Greedy decoding gives the same completion N times, so it is
answered once. The model is scored where it is: the caller places it (train.py on the strategy's device,
evaluate.py on `device=`), and nothing here moves it. With a journal (evaluate.py's, spot.evaluate.resume) the
completions it holds are reused and the others are journaled as they arrive.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace

from spot.chat import ChatFormat
from spot.engines.base import Engine
from spot.errors import DataError
from spot.evaluate.resume import CompletionJournal, item_key
from spot.evaluate.suites import Suite
from spot.generation import Sampling, generate

log = logging.getLogger(__name__)


def samples_per_prompt(suite: Suite, sampling: Sampling) -> int:
    return 1 if sampling.greedy else suite.n_samples


@dataclass
class SuiteResult:
    name: str
    group: str
    accuracy: float  # mean over every (problem, sample): avg@n_samples
    n_questions: int
    n_samples: int
    seconds: float
    max_new_tokens: int = 0
    records: list[dict] = field(default_factory=list, repr=False)
    parts: dict[str, float] = field(default_factory=dict)  # mean of each sub-result, for a suite scored in parts

    @property
    def metric(self) -> str:
        return f"avg@{self.n_samples}"

    def summary(self) -> dict:
        return {"group": self.group, "accuracy": self.accuracy, "metric": self.metric,
                "n_questions": self.n_questions, "n_samples": self.n_samples, "max_new_tokens": self.max_new_tokens,
                "seconds": self.seconds, **({"parts": self.parts} if self.parts else {})}


def score_suite(engine: Engine, chat: ChatFormat, suite: Suite, sampling: Sampling, seed: int = 0,
                progress: bool = True, journal: CompletionJournal | None = None) -> SuiteResult:
    """Every problem answered `n` times (copies sit next to each other, so one batch samples them together)."""
    t0 = time.time()
    n = samples_per_prompt(suite, sampling)
    problems = [p for p in suite.prompts for _ in range(n)]
    desc = f"eval {suite.name}" + (f" avg@{n}" if n > 1 else "")
    budget = replace(sampling, max_new_tokens=suite.max_new_tokens)
    completions = answer(engine, chat, suite, problems, budget, seed, progress, desc, journal)
    return judge(suite, completions, n, time.time() - t0)


def answer(engine: Engine, chat: ChatFormat, suite: Suite, problems: list[str], sampling: Sampling, seed: int,
           progress: bool, desc: str, journal: CompletionJournal | None) -> list[str]:
    """A completion for each of `problems`, one request whose i-th prompt is seeded from its place i. What the
    journal holds is not asked again; the rest go to the engine in one call, at their own places, and into the
    journal as they arrive."""
    keys = [item_key(p, suite.template, sampling.max_new_tokens, i) for i, p in enumerate(problems)]
    held = journal.done if journal else {}
    out = [held.get(k) for k in keys]
    todo = [i for i, c in enumerate(out) if c is None]
    if len(todo) < len(problems):
        log.info("%s: %d of %d completions from the journal", suite.name, len(problems) - len(todo), len(problems))
    if not todo:
        return out

    def arrived(idx: list[int], texts: list[str]) -> None:
        journal.add(suite.name, [todo[k] for k in idx], [keys[todo[k]] for k in idx], texts)

    texts = generate(engine, chat, [problems[i] for i in todo], sampling, seed=seed, progress=progress, desc=desc,
                     template=suite.template, positions=todo, on_done=arrived if journal else None)
    for i, text in zip(todo, texts, strict=True):
        out[i] = text
    return out


def judge(suite: Suite, completions: list[str], n: int, seconds: float = 0.0) -> SuiteResult:
    """Scores `n` completions per problem (problem-major order) with the suite's own scorer. A suite scored in
    parts (Verdict.parts) gives each item the fraction of its parts right, so its accuracy is the mean of the
    parts' accuracies, and reports each part's mean too."""
    records = []
    for k, completion in enumerate(completions):
        q = k // n
        verdict = suite.score(completion, suite.answers[q])
        records.append({"suite": suite.name, "question": q, "sample": k % n, "prompt": suite.prompts[q],
                        "answer": suite.answers[q], "completion": completion, "correct": verdict.correct,
                        "predicted": verdict.predicted, "note": verdict.note,
                        **({"parts": dict(verdict.parts), "score": verdict.score} if verdict.parts else {}),
                        **({"meta": suite.meta[q]} if suite.meta else {})})
    accuracy = sum(item_score(r) for r in records) / max(1, len(records))
    names = dict.fromkeys(name for r in records for name in r.get("parts", {}))
    parts = {name: sum(r["parts"][name] for r in records) / len(records) for name in names}
    return SuiteResult(suite.name, suite.group, accuracy, len(suite.prompts), n, round(seconds, 2),
                       suite.max_new_tokens, records, parts)


def item_score(record: dict) -> float:
    """A record's credit: its parts' fraction right when scored in parts, else 1/0."""
    return record.get("score", int(record["correct"]))


def score_completions(rows: list[tuple[str, dict]], suites: list[Suite]) -> Scores:
    """Scores completions produced elsewhere: `rows` are (where, {"prompt", "completion"}) with the raw problem
    as prompt; every problem of every suite needs the same number of completions (that is its avg@N)."""
    by_prompt: dict[str, list[str]] = {}
    for where, row in rows:
        prompt, completion = row.get("prompt"), row.get("completion")
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DataError(f"{where}: needs string fields 'prompt' (the raw problem) and 'completion'")
        by_prompt.setdefault(prompt, []).append(completion)
    results = []
    for suite in suites:
        counts = {len(by_prompt.get(p, [])) for p in suite.prompts}
        missing = next((p for p in suite.prompts if p not in by_prompt), None)
        if missing is not None:
            raise DataError(f"suite {suite.name}: no completion for its problem {suite.prompts.index(missing) + 1} "
                            f"of {len(suite.prompts)}, {missing[:60]!r}: a file that covers only the first N "
                            f"problems is scored with eval.limit=N")
        if len(counts) != 1:
            raise DataError(f"suite {suite.name}: problems have different numbers of completions {sorted(counts)}")
        n = counts.pop()
        results.append(judge(suite, [c for p in suite.prompts for c in by_prompt[p][:n]], n))
    return Scores(results, 0.0)


def group_means(accuracy: dict[str, float], groups_of: dict[str, str]) -> dict[str, float]:
    """Plain mean of suite accuracies within each group (in_domain, ood, prior, ...)."""
    groups: dict[str, list[float]] = {}
    for name, acc in accuracy.items():
        groups.setdefault(groups_of[name], []).append(acc)
    return {g: sum(v) / len(v) for g, v in groups.items()}


@dataclass
class Scores:
    """One model's scores on the selected suites: one side ("base" or "trained") of metrics.json."""

    results: list[SuiteResult]
    seconds: float

    @property
    def records(self) -> list[dict]:
        return [rec for r in self.results for rec in r.records]

    def as_dict(self) -> dict:
        """suites (accuracy), groups (mean per group), details (per-suite summary), correct (0/1 per item and
        sample, in order, so two models can be compared item by item; the fraction of parts right for a suite
        scored in parts), seconds."""
        suites = {r.name: r.accuracy for r in self.results}
        correct: dict[str, list[float]] = {}
        for rec in self.records:
            correct.setdefault(rec["suite"], []).append(item_score(rec))
        return {"suites": suites, "groups": group_means(suites, {r.name: r.group for r in self.results}),
                "details": {r.name: r.summary() for r in self.results}, "correct": correct,
                "seconds": round(self.seconds, 1)}


def score_model(engine: Engine, chat: ChatFormat, suites: list[Suite], sampling: Sampling, seed: int = 0,
                progress: bool = True, journal: CompletionJournal | None = None) -> Scores:
    """Generate on every suite with `engine` (spot.engines) and score; a model in memory (the hf engine) stays on
    its device and in its train/eval mode."""
    t0 = time.time()
    results = [score_suite(engine, chat, s, sampling, seed=seed, progress=progress, journal=journal) for s in suites]
    return Scores(results, time.time() - t0)
