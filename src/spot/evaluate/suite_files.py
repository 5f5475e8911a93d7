"""Benchmark suites read from local files or `datasets` ids: math sets, multiple choice, IFEval.

Each builder returns a `Suite` (or a list of them) and is named by a small config in conf/eval/, so adding a
benchmark is adding a file there. Rows are read in the common shapes of the paper's sets:

    GSM8K          {"question", "answer": "... #### 18"}
    MATH-500       {"problem", "solution", "answer"}
    AIME 2024/25   {"problem" | "Problem" | "question", "answer" | "Answer": 18}
    AMC23          {"question", "answer": 18.0}
    Minerva        {"problem", "solution": "... \\boxed{...}"}     (the answer is the solution's last box)
    OlympiadBench  {"question", "final_answer": ["$\\frac{1}{2}$"]}
    GPQA-Diamond   {"Question", "Correct Answer", "Incorrect Answer 1".."3"}  or  {"question", "choices", "answer"}
    IFEval         {"key", "prompt", "instruction_id_list", "kwargs"}

A suite reads its local `path` when that exists, else its `hub` dataset through `datasets`
(spot.evaluate.benchmarks); offline with neither, one line names the file and the command that writes it. A row
without an answer names the file and the line.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

from spot.answers import final_answer, last_boxed
from spot.errors import ConfigError, DataError
from spot.evaluate.benchmarks import benchmark_rows
from spot.evaluate.scorers import LETTERS, NEEDS_PUNKT, ChoiceScorer, IFEvalScorer, punkt_available
from spot.evaluate.suites import Suite

PROMPT_KEYS = ("problem", "question", "Problem", "Question", "prompt", "input")
# `solution` comes last: only when no answer field exists is the answer read from its last \boxed{}.
ANSWER_KEYS = ("answer", "final_answer", "Answer", "expected_answer", "solution", "Solution")


def read_rows(suite: str, path: str, split: str = "test", subset: str | None = None, hub: str | None = None
              ) -> Iterator[tuple[str, dict]]:
    """(where, row) from `path`, else from the hub dataset `hub`; what is missing is named by its config key."""
    return benchmark_rows(suite, path, hub=hub, split=split, subset=subset)


def pick(where: str, row: dict, key: str | None, candidates: tuple[str, ...], what: str):
    """The value of `key`, or of the first candidate field present and non-empty."""
    keys = (key,) if key else candidates
    for k in keys:
        value = row.get(k)
        if value is not None and value != "" and value != []:
            return k, value
    raise DataError(f"{where}: no {what} (looked for field {' or '.join(repr(k) for k in keys)})")


def reference_answer(where: str, key: str, value) -> str:
    """A row's final answer as text: numbers as written, the first of a list, GSM8K's `#### N`, a solution's
    last \\boxed{}; surrounding $ removed."""
    if isinstance(value, list):
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DataError(f"{where}: field '{key}' must be text or a number, got {type(value).__name__}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # AMC23 stores 18.0
    text = str(value).strip()
    if key.lower() == "solution" or "\\boxed" in text:
        boxed = last_boxed(text)
        if boxed is None:
            raise DataError(f"{where}: field '{key}' has no \\boxed{{}} final answer")
        text = boxed
    elif "####" in text:
        text = final_answer(where, text, key)
    text = text.strip().strip("$").strip()
    if not text:
        raise DataError(f"{where}: field '{key}' has an empty answer")
    return text


def file_suite(name: str, path: str, score, group: str = "in_domain", prompt_key: str | None = None,
               answer_key: str | None = None, template: str | None = None, limit: int | None = None,
               n_samples: int = 1, max_new_tokens: int = 2048, split: str = "test",
               subset: str | None = None, hub: str | None = None) -> Suite:
    """A problem + answer benchmark (GSM8K, MATH-500, AIME, AMC, Minerva, OlympiadBench). `template` wraps
    each problem; its `{prompt}` is replaced by the problem text (other braces, as in \\boxed{}, are kept)."""
    prompts, answers, meta = [], [], []
    for where, row in read_rows(name, path, split, subset, hub):
        if limit is not None and len(prompts) >= limit:
            break
        pk, problem = pick(where, row, prompt_key, PROMPT_KEYS, "problem text")
        if not isinstance(problem, str):
            raise DataError(f"{where}: field '{pk}' must be text, got {type(problem).__name__}")
        ak, value = pick(where, row, answer_key, ANSWER_KEYS, "answer")
        answers.append(reference_answer(where, ak, value))
        prompts.append(problem.strip())
        meta.append({"source": where})
    if not prompts:
        raise DataError(f"suite {name}: {path} has no rows")
    return Suite(name, group, prompts, answers, score, max_new_tokens=max_new_tokens, n_samples=n_samples,
                 meta=meta, template=template)


def choice_options(where: str, row: dict, question_key: str) -> tuple[str, list[str]]:
    """(question, options with the correct one first) from GPQA's fields or a {choices, answer} row."""
    _, question = pick(where, row, question_key, ("Question", "question"), "question")
    if "Correct Answer" in row:
        wrong = [row[k] for k in sorted(row) if k.startswith("Incorrect Answer") and row[k]]
        options = [row["Correct Answer"], *wrong]
    elif "choices" in row:
        _, answer = pick(where, row, None, ("answer",), "answer")
        choices = list(row["choices"])
        gold = LETTERS.index(answer) if isinstance(answer, str) and answer in LETTERS else answer
        if not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise DataError(f"{where}: field 'answer' must be a letter or an index into 'choices'")
        options = [choices[gold], *(c for i, c in enumerate(choices) if i != gold)]
    else:
        raise DataError(f"{where}: no answer (looked for field 'Correct Answer' or 'choices'+'answer')")
    if len(options) < 2 or any(not isinstance(o, str) or not o.strip() for o in options):
        raise DataError(f"{where}: needs at least two non-empty text options")
    return question, [o.strip() for o in options]


def choice_suite(name: str, path: str, group: str = "ood", template: str | None = None,
                 question_key: str | None = None, limit: int | None = None, n_samples: int = 1,
                 max_new_tokens: int = 2048, seed: int = 0, split: str = "train",
                 subset: str | None = None, hub: str | None = None) -> Suite:
    """Multiple choice with the options shuffled per question. Row i's order comes from its own generator
    seeded with (seed, suite, i), so the gold letter does not depend on `limit` or on the other rows."""
    prompts, answers, meta = [], [], []
    for i, (where, row) in enumerate(read_rows(name, path, split, subset, hub)):
        if limit is not None and i >= limit:
            break
        question, options = choice_options(where, row, question_key)
        order = list(range(len(options)))
        random.Random(f"spot-choice/{seed}/{name}/{i}").shuffle(order)
        gold = order.index(0)  # the correct option was first before shuffling
        lines = "\n".join(f"{LETTERS[k]}) {options[j]}" for k, j in enumerate(order))
        prompts.append(f"{question.strip()}\n\n{lines}")
        answers.append(LETTERS[gold])
        meta.append({"source": where, "gold_index": gold})
    if not prompts:
        raise DataError(f"suite {name}: {path} has no rows")
    return Suite(name, group, prompts, answers, ChoiceScorer(), max_new_tokens=max_new_tokens,
                 n_samples=n_samples, meta=meta, template=template)


def ifeval_suite(name: str, path: str, group: str = "prior", loose: bool = False, limit: int | None = None,
                 n_samples: int = 1, max_new_tokens: int = 2048, split: str = "train",
                 subset: str | None = None, hub: str | None = None) -> Suite:
    """IFEval (google/IFEval rows), scored by lm-eval's implementation of its checks (IFEvalScorer)."""
    from spot.evaluate.scorers import load_ifeval_checks

    rows = read_rows(name, path, split, subset, hub)  # first: a missing file is told before lm-eval's import noise
    try:
        registry = load_ifeval_checks().instructions_registry.INSTRUCTION_DICT
    except ImportError as e:
        raise DataError(f"suite {name}: {e}") from None
    prompts, answers = [], []
    for where, row in rows:
        if limit is not None and len(prompts) >= limit:
            break
        _, prompt = pick(where, row, "prompt", (), "prompt")
        _, ids = pick(where, row, "instruction_id_list", (), "instruction list")
        kwargs = row.get("kwargs") or [{} for _ in ids]
        unknown = [i for i in ids if i not in registry]
        if unknown or len(kwargs) != len(ids):
            raise DataError(f"{where}: unknown instructions {unknown}" if unknown else
                                 f"{where}: {len(ids)} instructions but {len(kwargs)} kwargs")
        prompts.append(prompt)
        answers.append({"key": row.get("key", len(prompts)), "prompt": prompt, "instruction_id_list": list(ids),
                        "kwargs": [dict(k or {}) for k in kwargs]})
    if not prompts:
        raise DataError(f"suite {name}: {path} has no rows")
    needs = sorted({i for a in answers for i in a["instruction_id_list"] if i in NEEDS_PUNKT})
    if needs and not punkt_available():
        raise DataError(f"suite {name}: instruction {needs[0]} counts sentences with NLTK's punkt_tab data, "
                             "which is not installed; run once with network: python -m nltk.downloader punkt_tab")
    return Suite(name, group, prompts, answers, IFEvalScorer(loose), max_new_tokens=max_new_tokens,
                 n_samples=n_samples, template="{prompt}")  # IFEval's prompt is the whole instruction


def adjust(suites: list[Suite], limit: int | None = None, n_samples: int | None = None,
           max_new_tokens: int | None = None) -> list[Suite]:
    """Command-line settings that apply to every suite: the first `limit` questions, N samples, a budget."""
    for s in suites:
        if limit is not None:
            s.prompts, s.answers = s.prompts[:limit], s.answers[:limit]
            s.meta = s.meta[:limit] if s.meta else s.meta
        if n_samples is not None:
            s.n_samples = n_samples
        if max_new_tokens is not None:
            s.max_new_tokens = max_new_tokens
    names = [s.name for s in suites]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"suite {dupes[0]} is selected twice; give each selected suite its own name")
    return suites
