"""Problems to rectify: a file of math problems (jsonl, parquet, datasets); the toy world brings its own
(spot.toy.problems).

Every source becomes a list of `Item`s, one per policy sample to take. A file may already carry the policy's
completions (sampled elsewhere, e.g. with vLLM, or the GSM8K example solutions); those items skip sampling.
A malformed row stops the run with one line naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spot.answers import final_answer
from spot.errors import DataError
from spot.rows import iter_rows, text_field


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


# ----------------------------------------------------------------------------- files

def field(where: str, row: dict, key: str) -> str:
    """A non-empty string field; DAPO's prompt may be a chat list, whose user turn is the problem."""
    value = row.get(key)
    if isinstance(value, list) and value and isinstance(value[-1], dict):  # [{"role", "content"}]
        value = value[-1].get("content")
    if isinstance(value, int | float) and not isinstance(value, bool):  # an answer given as a number: 18
        value = str(value)
    return text_field(where, key, value)


def file_items(path: str, prompt_key: str = "question", answer_key: str = "answer", limit: int | None = None,
               completion_keys: list[str] | None = None, subset: str | None = None) -> list[Item]:
    """Items from a problem file. GSM8K: prompt_key=question, answer_key=answer (`#### N`); DAPO: prompt,
    solution. With `completion_keys` every row yields one item per key holding `{"solution": ...}` or a
    string: completions sampled elsewhere (GSM8K's example_model_solutions.jsonl)."""
    prefix = Path(path).stem
    items: list[Item] = []
    for n, (where, row) in enumerate(iter_rows(path, "problems.source.path", subset=subset)):
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
                raise DataError(f"{where}: field '{key}' must be a string or hold a 'solution' string")
            items.append(Item(id=f"{pid}/{key}", prompt=prompt, answer=answer, problem_id=pid,
                              completion=text))
    if not items:
        raise DataError(f"problems.source.path={path}: no rows")
    return items
