"""Answer checking: is a completion's final answer the reference answer? Shared by rectify and evaluation.

Model output is only ever parsed, never executed. `MathVerifier` uses math-verify (the paper's checker) with a
time bound per answer, so a pathological completion costs at most `timeout_s` and counts as wrong.
`final_answer` reads a reference answer (GSM8K's `#### N`) out of a data row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from spot.errors import DataError


@dataclass(frozen=True)
class Verdict:
    correct: bool
    predicted: str | None  # the extracted final answer; None when none was found
    note: str = ""  # why the check could not be made ("timeout", "no answer", ...)


def exact_match(predicted: str | None, answer: str) -> Verdict:
    """The verdict of an exact comparison of an extracted answer; None means no answer was found."""
    if predicted is None:
        return Verdict(False, None, "no answer")
    return Verdict(predicted == str(answer), predicted)


# ----------------------------------------------------------------------------- math (math-verify)

_HASHES = re.compile(r"####\s*([^\n]+)")
_A_LINE = re.compile(r"(?:^|\n)\s*A:\s*([^\n]+?)\s*$")
_FINAL_IS = re.compile(r"final answer is:?\s*([^\n]+?)\s*$", re.I)
_GSM8K_FINAL = re.compile(r"####\s*([^\n]+?)\s*$")
_A_LAST_LINE = re.compile(r"(?:^|\n)A:\s*([^\n]+?)\s*$")
MAX_ANSWER_CHARS = 200  # a longer "final answer" is not one; it would only feed the parser's worst cases


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox{...}), braces matched; None when absent or unclosed."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, j = 1, i
    while j < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return text[i : j - 1].strip() if depth == 0 else None


def extract_final(text: str) -> str | None:
    """The final answer a completion states: the last \\boxed{} first (the paper's rule), then GSM8K's
    `#### N`, then a last line `A: N`, then "the final answer is N". Linear-time scans only."""
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed
    for pattern in (_HASHES, _A_LINE, _FINAL_IS):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    return None


def _plain(s: str) -> str:
    """Cheap normal form for the fast path: no $, spaces, thousands commas, trailing period or \\text{}."""
    s = re.sub(r"\\text\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\!", "").replace(" ", "").replace(",", "")
    return s.rstrip(".").lower()


class MathVerifier:
    """math-verify's equivalence check on the extracted final answers, each parse and comparison bounded by
    `timeout_s` (math-verify's SIGALRM timer: the check must run on the main thread, as the pipeline does).
    Identical plain forms are accepted without parsing, which settles most GSM8K answers in microseconds.
    """

    name = "math"

    def __init__(self, timeout_s: int = 3):
        self.timeout_s = max(1, int(timeout_s))

    def _parse(self, answer: str):
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

        config = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
        return parse(f"\\boxed{{{answer}}}", extraction_config=config, parsing_timeout=self.timeout_s)

    def __call__(self, completion: str, answer: str) -> Verdict:
        predicted = extract_final(completion)
        if predicted is None:
            return Verdict(False, None, "no answer")
        if len(predicted) > MAX_ANSWER_CHARS:
            return Verdict(False, predicted[:MAX_ANSWER_CHARS], "answer too long")
        if _plain(predicted) == _plain(str(answer)):
            return Verdict(True, predicted)
        from math_verify import verify
        from math_verify.errors import TimeoutException

        try:
            gold, pred = self._parse(str(answer)), self._parse(predicted)
            ok = bool(gold and pred and verify(gold, pred, timeout_seconds=self.timeout_s))
        except TimeoutException:
            return Verdict(False, predicted, "timeout")
        except Exception:  # the parser's own failures on odd input: unparseable means not shown correct
            return Verdict(False, predicted, "unparseable")
        return Verdict(ok, predicted)


def final_answer(where: str, text: str, key: str) -> str:
    """The reference's final answer: after GSM8K's `#### N`, after a last line `A: N` (GSM8K example
    solutions), or the whole text (DAPO's `solution` is the answer itself). Thousands commas are dropped."""
    m = _GSM8K_FINAL.search(text) or _A_LAST_LINE.search(text)
    if m is None:
        if "####" in text:
            raise DataError(f"{where}: field '{key}' has '####' but no answer after it")
        return text.strip()
    answer = m.group(1).strip().replace(",", "")
    if not answer:
        raise DataError(f"{where}: field '{key}' has an empty final answer")
    return answer
