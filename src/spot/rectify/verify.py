"""Answer checking: is a completion's final answer the reference answer?

Model output is only ever parsed, never executed. `ToyVerifier` is the toy world's exact match; `MathVerifier`
uses math-verify (the paper's checker) with a time bound per answer, so a pathological completion costs at
most `timeout_s` and counts as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    correct: bool
    predicted: str | None  # the extracted final answer; None when none was found
    note: str = ""  # why the check could not be made ("timeout", "no answer", ...)


class ToyVerifier:
    """Correct when the text after the last `#### ` equals the reference exactly (spot.toy.tasks)."""

    name = "toy"

    def __call__(self, completion: str, answer: str) -> Verdict:
        from spot.toy.tasks import extract_answer

        predicted = extract_answer(completion)
        if predicted is None:
            return Verdict(False, None, "no answer")
        return Verdict(predicted == str(answer), predicted)
