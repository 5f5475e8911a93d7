"""Scorers that the math checker (spot.answers.MathVerifier) does not cover: multiple choice and IFEval.

A scorer is a callable (completion, reference) -> Verdict. Model output is only parsed with bounded regular
expressions and string operations; nothing in it is ever evaluated or executed.
"""

from __future__ import annotations

import re

from spot.answers import MAX_ANSWER_CHARS, Verdict, exact_match, last_boxed

LETTERS = "ABCDEFGHIJ"
_LETTER = re.compile(r"^\(?([A-J])\)?(?:$|[\s.:)])")
_ANSWER_IS = re.compile(r"answer(?:\s+is)?\s*[:：]?\s*\(?\$?(?:\\text\{)?([A-J])\b", re.I)


def extract_choice(text: str) -> str | None:
    """The chosen letter: the last \\boxed{} first (as the prompt asks), then the last "answer is X"."""
    boxed = last_boxed(text)
    if boxed is not None and len(boxed) <= MAX_ANSWER_CHARS:
        inner = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", boxed).strip()
        m = _LETTER.match(inner)
        if m:
            return m.group(1)
    found = _ANSWER_IS.findall(text[-2000:])  # the conclusion, not a letter quoted from the question
    return found[-1].upper() if found else None


class ChoiceScorer:
    """Multiple choice (GPQA-Diamond style): correct when the extracted letter is the gold letter."""

    name = "choice"

    def __call__(self, completion: str, answer: str) -> Verdict:
        return exact_match(extract_choice(completion), answer)


def punkt_available() -> bool:
    """IFEval's sentence counting uses NLTK's punkt_tab data, which is downloaded separately from nltk."""
    import nltk

    try:
        nltk.data.find("tokenizers/punkt_tab/english/")
        return True
    except LookupError:
        return False


NEEDS_PUNKT = ("length_constraints:number_sentences",)
IFEVAL_INSTALL = "pip install 'lm-eval[ifeval]'"


def load_ifeval_checks():
    """lm-evaluation-harness's copy of Google's IFEval checks (lm_eval.tasks.ifeval), imported on first use.

    Its import tries to download NLTK's punkt_tab when that is missing; offline this fails quietly and only
    the sentence-count instruction stays unusable (see `punkt_available`).
    """
    try:
        from lm_eval.tasks.ifeval import utils
    except ImportError as e:
        raise ImportError(f"IFEval scoring needs lm-eval's IFEval checks ({e}); install them with: "
                          f"{IFEVAL_INSTALL}") from None
    return utils


class IFEvalScorer:
    """IFEval's prompt-level accuracy (every instruction followed), strict by default (`loose=True` for the
    loose variant). The reference is {"key", "prompt", "instruction_id_list", "kwargs"} as in google/IFEval."""

    name = "ifeval"

    def __init__(self, loose: bool = False):
        self.loose = loose
        self._utils = None

    def __call__(self, completion: str, answer: dict) -> Verdict:
        if self._utils is None:
            self._utils = load_ifeval_checks()
        u = self._utils
        example = u.InputExample(key=answer.get("key", 0), instruction_id_list=answer["instruction_id_list"],
                                 prompt=answer["prompt"], kwargs=answer["kwargs"])
        check = u.test_instruction_following_loose if self.loose else u.test_instruction_following_strict
        out = check(example, completion)
        followed = ",".join(f"{i}={int(ok)}" for i, ok in zip(out.instruction_id_list,
                                                                out.follow_instruction_list))
        return Verdict(bool(out.follow_all_instructions), followed)
