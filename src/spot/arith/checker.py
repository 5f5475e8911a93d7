"""The arith world's answer check: the final number a model states in free text, against the reference exactly.

The final statement is the last of `Answer: N` (also "answer is N", "Answer = N", markdown bold, `$N$`) and
`\\boxed{N}`, whichever comes later in the text; its first number is the answer. "Answer: 12 apples.", "1,200"
and "12.0" read as 12, 1200 and 12; "12.5", "twelve" or no final statement are wrong. Text is only matched with
bounded regular expressions, never evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spot.answers import Verdict, exact_match, last_boxed

NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?"  # thousands commas, an optional decimal part
_MINUS = "-−"
# "answer", maybe "is", maybe ":" or "=", then at most a few spaces, markdown stars, $ or \( before the number
_ANSWER = re.compile(rf"answer(?:\s+is)?\s*[:=]?[\s*$:\\(]{{0,12}}(?P<num>[{_MINUS}]?{NUMBER})", re.I)
_BOXED_NUMBER = re.compile(rf"[\s$]*(?:\\text\{{)?\s*(?P<num>[{_MINUS}]?{NUMBER})")


@dataclass(frozen=True)
class Statement:
    """Where the final statement is: it starts at `start`; its number is text[num_start:num_end]."""

    start: int
    num_start: int
    num_end: int


def _boxed_statement(text: str) -> Statement | None:
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0 or last_boxed(text) is None:
        return None
    m = _BOXED_NUMBER.match(text, text.index("{", start) + 1)
    return Statement(start, m.start("num"), m.end("num")) if m else Statement(start, -1, -1)


def final_statement(text: str) -> Statement | None:
    """The last answer statement of `text`; its num_start is -1 when it holds no number (`\\boxed{x}`)."""
    matches = list(_ANSWER.finditer(text))
    m = matches[-1] if matches else None
    said = Statement(m.start(), m.start("num"), m.end("num")) if m else None
    boxed = _boxed_statement(text)
    if boxed is not None and (said is None or boxed.start > said.start):
        return boxed
    return said


def to_int_text(number: str) -> str:
    """A number as the checker compares it: no thousands commas, an ASCII minus, `12.0` as `12`."""
    plain = number.replace(",", "").replace("−", "-")
    whole, _, frac = plain.partition(".")
    return whole if frac.strip("0") == "" else plain


def extract_answer(text: str) -> str | None:
    """The number of the final statement, normalised (`to_int_text`); None when there is none."""
    s = final_statement(text)
    if s is None or s.num_start < 0:
        return None
    return to_int_text(text[s.num_start:s.num_end])


class ArithVerifier:
    """Correct when the final statement's number equals the reference integer exactly."""

    name = "arith"

    def __call__(self, completion: str, answer: str) -> Verdict:
        return exact_match(extract_answer(completion), str(answer))
