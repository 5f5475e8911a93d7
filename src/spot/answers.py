"""Answer checking: is a completion's final answer the reference answer? Shared by rectify and evaluation.

Model output is only ever parsed, never executed. `MathVerifier` uses math-verify (the paper's checker) with a
time bound per answer, so a pathological completion costs at most `timeout_s` and counts as wrong.
`final_answer` reads a reference answer (GSM8K's `#### N`) out of a data row.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
from dataclasses import dataclass

from spot.errors import DataError


@dataclass(frozen=True)
class Verdict:
    correct: bool
    predicted: str | None  # the extracted final answer; None when none was found
    note: str = ""  # why the check could not be made ("timeout", "no answer", ...)
    # Sub-results of a suite scored in parts (Connect4's two lists): ((name, right), ...). The item's score is
    # then the fraction of parts right, and `correct` says whether all are.
    parts: tuple[tuple[str, bool], ...] = ()

    @property
    def score(self) -> float:
        """The item's credit: the fraction of its parts right, or 1/0 for a suite scored whole."""
        if self.parts:
            return sum(ok for _, ok in self.parts) / len(self.parts)
        return float(self.correct)


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
    `timeout_s`. Identical plain forms are accepted without parsing, which settles most GSM8K answers in
    microseconds.

    math-verify bounds its work with a SIGALRM timer, which only the main thread may set: called from another
    thread its timeout fails and `\\boxed{\\frac{36}{2}}` against 18 came out "unparseable". So off the main
    thread the check runs in a worker process (spawned once, on its own main thread), with the same verdicts.
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
        if threading.current_thread() is not threading.main_thread():
            try:
                ok, note = _worker().submit(_equivalent, self.timeout_s, predicted, str(answer)).result(
                    timeout=60 + 4 * self.timeout_s)  # the first call waits for the worker to start
            except concurrent.futures.TimeoutError:
                ok, note = False, "timeout"
            return Verdict(ok, predicted, note)
        ok, note = _equivalent(self.timeout_s, predicted, str(answer))
        return Verdict(ok, predicted, note)


def _equivalent(timeout_s: int, predicted: str, answer: str) -> tuple[bool, str]:
    """(equivalent?, note) by math-verify, on the calling process's main thread."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    verifier = MathVerifier(timeout_s)
    try:
        gold, pred = verifier._parse(answer), verifier._parse(predicted)
        return bool(gold and pred and verify(gold, pred, timeout_seconds=timeout_s)), ""
    except TimeoutException:
        return False, "timeout"
    except Exception:  # the parser's own failures on odd input: unparseable means not shown correct
        return False, "unparseable"


_WORKER: concurrent.futures.ProcessPoolExecutor | None = None
_WORKER_LOCK = threading.Lock()


def _worker() -> concurrent.futures.ProcessPoolExecutor:
    """One spawned process that runs math-verify for every thread but the main one."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            import multiprocessing

            _WORKER = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        return _WORKER


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
