"""Problems to rectify: the toy world's training split, or a file of math problems (jsonl, parquet, datasets).

Every source becomes a list of `Item`s, one per policy sample to take. A file may already carry the policy's
completions (sampled elsewhere, e.g. with vLLM, or the GSM8K example solutions); those items skip sampling.
A malformed row stops the run with one line naming the file, the line and the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class ProblemError(ValueError):
    """A problem file or row that cannot be used; the message names file, line and field."""


@dataclass(frozen=True)
class Item:
    """One policy sample to take (or already taken) on one problem."""

    id: str  # unique per sample
    prompt: str  # the raw problem text, never chat-formatted
    answer: str  # the reference final answer, e.g. "18"
    problem_id: str = ""  # shared by samples of one problem (direct mode asks once per problem)
    completion: str | None = None  # the policy's answer when it was sampled elsewhere

    @property
    def group(self) -> str:
        return self.problem_id or self.id


def toy_items(n: int = 4000, seed: int = 0, n_test: int = 1000) -> list[Item]:
    """`n` in-domain toy problems from the train stream, none of whose prompts is in the held-out test set."""
    from spot.evaluate.suites import toy_test_problems
    from spot.toy.tasks import IN_DOMAIN, make_problem, split_rng

    held_out = {p.text for p in toy_test_problems(n_test, seed)}
    rng = split_rng(seed, "train")
    items: list[Item] = []
    while len(items) < n:
        p = make_problem(rng, IN_DOMAIN)
        if p.text not in held_out:
            items.append(Item(id=f"toy-{seed}-{len(items)}", prompt=p.text, answer=str(p.answer)))
    return items


# ----------------------------------------------------------------------------- files

_GSM8K_FINAL = re.compile(r"####\s*([^\n]+?)\s*$")
_A_LINE = re.compile(r"(?:^|\n)A:\s*([^\n]+?)\s*$")


def iter_rows(path: str, subset: str | None = None) -> Iterator[tuple[str, dict]]:
    """(where, row) for a jsonl or parquet file, a saved `datasets` directory, or a hub dataset id.

    `where` is "file:line" for jsonl and "file:row N" otherwise, so errors point at the row to fix.
    """
    p = Path(path)
    if p.suffix == ".jsonl":
        if not p.exists():
            raise ProblemError(f"problems.path={path} does not exist")
        with p.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ProblemError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise ProblemError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
                yield f"{path}:{lineno}", row
        return
    if p.suffix == ".parquet":
        if not p.exists():
            raise ProblemError(f"problems.path={path} does not exist")
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(p).to_pylist()):
            yield f"{path}:row {i + 1}", row
        return
    import datasets

    if p.exists():
        ds = datasets.load_from_disk(str(p))
    else:
        ds = datasets.load_dataset(path, subset, split="train")
    for i, row in enumerate(ds):
        yield f"{path}:row {i + 1}", row


def field(where: str, row: dict, key: str) -> str:
    """A non-empty string field; DAPO's prompt may be a chat list, whose user turn is the problem."""
    value = row.get(key)
    if isinstance(value, list) and value and isinstance(value[-1], dict):  # [{"role", "content"}]
        value = value[-1].get("content")
    if value is None:
        raise ProblemError(f"{where}: missing field '{key}'")
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ProblemError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ProblemError(f"{where}: field '{key}' is empty")
    return value


def final_answer(where: str, text: str, key: str) -> str:
    """The reference's final answer: after GSM8K's `#### N`, after a last line `A: N` (GSM8K example
    solutions), or the whole text (DAPO's `solution` is the answer itself). Thousands commas are dropped."""
    m = _GSM8K_FINAL.search(text) or _A_LINE.search(text)
    if m is None:
        if "####" in text:
            raise ProblemError(f"{where}: field '{key}' has '####' but no answer after it")
        return text.strip()
    answer = m.group(1).strip().replace(",", "")
    if not answer:
        raise ProblemError(f"{where}: field '{key}' has an empty final answer")
    return answer


def file_items(path: str, prompt_key: str = "question", answer_key: str = "answer", limit: int | None = None,
               completion_keys: list[str] | None = None, subset: str | None = None) -> list[Item]:
    """Items from a problem file. GSM8K: prompt_key=question, answer_key=answer (`#### N`); DAPO: prompt,
    solution. With `completion_keys` every row yields one item per key holding `{"solution": ...}` or a
    string: completions sampled elsewhere (GSM8K's example_model_solutions.jsonl)."""
    prefix = Path(path).stem
    items: list[Item] = []
    for n, (where, row) in enumerate(iter_rows(path, subset)):
        if limit is not None and n >= limit:
            break
        prompt = field(where, row, prompt_key)
        answer = final_answer(where, field(where, row, answer_key), answer_key)
        pid = f"{prefix}-{n}"
        if not completion_keys:
            items.append(Item(id=pid, prompt=prompt, answer=answer))
            continue
        for key in completion_keys:
            value = row.get(key)
            text = value.get("solution") if isinstance(value, dict) else value
            if not isinstance(text, str):
                raise ProblemError(f"{where}: field '{key}' must be a string or hold a 'solution' string")
            items.append(Item(id=f"{pid}/{key}", prompt=prompt, answer=answer, problem_id=pid,
                              completion=text))
    if not items:
        raise ProblemError(f"problems.path={path}: no rows")
    return items
