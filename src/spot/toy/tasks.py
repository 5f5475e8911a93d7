"""The toy world's tasks: arithmetic word problems (in-domain and OOD) and "prior knowledge" string tasks.

In-domain problems are chains of +/- steps on small numbers, solved one step a line in a fixed house style:

    Q: Ann has 12 pens. Ann buys 5. Ann loses 3. How many pens?
    A: 12+5=17
    17-3=14
    #### 14

OOD problems are the same kind with longer chains and larger numbers. Prior tasks (reverse a word, sort its
letters, count a letter) are learned in pretraining and must survive post-training; their completions are just
the marked answer `#### <answer>`. Every completion ends in `#### <answer>`, so one extractor scores them all.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass, field

NAMES = ["Ann", "Bob", "Cy", "Dee", "Eve", "Max", "Sam", "Zoe"]
OBJECTS = ["pens", "coins", "books", "cards", "eggs", "shells"]
# Names and objects no pretraining example uses (the candidate OOD split toy_ood_names of experiments/study)
NEW_NAMES = ["Kim", "Lou", "Ned", "Pia", "Ray", "Tia"]
NEW_OBJECTS = ["apples", "stamps", "rocks", "beads"]
ADD_VERBS = ["gets", "finds", "buys"]
SUB_VERBS = ["loses", "sells", "eats"]
ANSWER_MARK = "#### "


@dataclass(frozen=True)
class Difficulty:
    """How hard a split is: chain length and the range every intermediate value stays in."""

    min_steps: int
    max_steps: int
    max_value: int
    max_operand: int


IN_DOMAIN = Difficulty(min_steps=2, max_steps=4, max_value=99, max_operand=40)
OOD = Difficulty(min_steps=5, max_steps=6, max_value=199, max_operand=90)
# Candidate OOD splits of experiments/study (toy_ood sits at the floor, 0.8% for the shipped base, so no change
# in it can be seen): one step longer than any chain trained on, in the in-domain number range; and in-domain
# chains told in words the model never read (Problem.reworded_text).
OOD_LONG = Difficulty(min_steps=5, max_steps=5, max_value=99, max_operand=40)


@dataclass(frozen=True)
class Problem:
    start: int
    ops: tuple[tuple[str, int], ...]  # (("+", 5), ("-", 3), ...)
    name: str = "Ann"
    obj: str = "pens"
    verbs: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        sentences = [f"{self.name} has {self.start} {self.obj}."]
        for (_, n), verb in zip(self.ops, self.verbs, strict=True):
            sentences.append(f"{self.name} {verb} {n}.")
        sentences.append(f"How many {self.obj}?")
        return " ".join(sentences)

    @property
    def reworded_text(self) -> str:
        """The same problem in another wording, same verbs and numbers: "Ann starts with 12 pens. Then Ann buys
        5. Then Ann loses 3. How many pens does Ann have now?" (no pretraining example is worded so)."""
        sentences = [f"{self.name} starts with {self.start} {self.obj}."]
        for (_, n), verb in zip(self.ops, self.verbs, strict=True):
            sentences.append(f"Then {self.name} {verb} {n}.")
        sentences.append(f"How many {self.obj} does {self.name} have now?")
        return " ".join(sentences)

    def values(self) -> list[int]:
        """The running value after each step, starting value first."""
        out = [self.start]
        for op, n in self.ops:
            out.append(out[-1] + n if op == "+" else out[-1] - n)
        return out

    @property
    def answer(self) -> int:
        return self.values()[-1]

    def solution(self) -> str:
        """The house style the base policy learns: one `a+b=c` step a line, then the marked answer."""
        return steps_to_text([(a, op, n) for a, (op, n) in zip(self.values(), self.ops)])

    def direct_solution(self) -> str:
        """A different house style, as a strong external model would write from scratch (the SFT data)."""
        lines = [f"We begin with {self.start}."]
        for value, (op, n) in zip(self.values()[1:], self.ops):
            lines.append(f"Add {n} to get {value}." if op == "+" else f"Take away {n} to get {value}.")
        return "\n".join(lines) + f"\n{ANSWER_MARK}{self.answer}"


def steps_to_text(steps: list[tuple[int, str, int]]) -> str:
    """Writes (left, op, right) steps in the house style, recomputing every result from its operands."""
    lines = [f"{a}{op}{b}={a + b if op == '+' else a - b}" for a, op, b in steps]
    final = steps[-1][0] + steps[-1][2] if steps[-1][1] == "+" else steps[-1][0] - steps[-1][2]
    return "\n".join(lines) + f"\n{ANSWER_MARK}{final}"


SLIPS = ("sign+", "sign-", "result")  # a "+" step written with "-", a "-" step written with "+", a wrong result


def slipped_solution(problem: Problem, slip: str, rng: random.Random) -> str | None:
    """The house-style solution with one slip of kind `slip` (SLIPS), as a writer who knows the rule makes it
    now and then: a step of the chain, drawn uniformly among those where the slip can be made, gets the wrong
    operator (computed with it: `17-5=12` for "buys 5") or a result off by 1-3; every later step carries on from
    the slipped value, and the marked answer is where the chain ends. None when no step of this problem admits
    the slip without a negative number somewhere in the chain.
    """
    options = []
    for k, (op, _) in enumerate(problem.ops):
        if slip == "result":
            options += [(k, op, off) for off in (-3, -2, -1, 1, 2, 3)]
        elif op == slip[-1]:
            options.append((k, "-" if op == "+" else "+", 0))
    rng.shuffle(options)
    for k, wrong_op, off in options:
        lines, value = [], problem.start
        for j, (op, n) in enumerate(problem.ops):
            a, op = value, wrong_op if j == k else op
            value = (a + n if op == "+" else a - n) + (off if j == k else 0)
            lines.append(f"{a}{op}{n}={value}")
            if value < 0:
                break
        else:
            return "\n".join(lines) + f"\n{ANSWER_MARK}{value}"
    return None


_SENTENCE = re.compile(r"(\w+) (" + "|".join(ADD_VERBS + SUB_VERBS) + r") (\d+)\.")
_START = re.compile(r"^(\w+) (?:has|starts with) (\d+) (\w+)\.")


def parse_problem(text: str) -> Problem:
    """Inverse of `Problem.text` (and of `reworded_text`): the toy Oracle reads problems as text, as a real Oracle
    would."""
    head = _START.match(text)
    if head is None:
        raise ValueError(f"not a toy arithmetic problem: {text[:60]!r}")
    ops, verbs = [], []
    for _, verb, n in _SENTENCE.findall(text):
        ops.append(("+" if verb in ADD_VERBS else "-", int(n)))
        verbs.append(verb)
    return Problem(int(head.group(2)), tuple(ops), head.group(1), head.group(3), tuple(verbs))


def make_problem(rng: random.Random, level: Difficulty) -> Problem:
    """Draws a chain whose every intermediate value stays in [0, level.max_value]."""
    steps = rng.randint(level.min_steps, level.max_steps)
    value = rng.randint(1, level.max_value)
    start, ops, verbs = value, [], []
    for _ in range(steps):
        can_add = value + 1 <= level.max_value
        op = "+" if (can_add and (value == 0 or rng.random() < 0.5)) else "-"
        if op == "+":
            n = rng.randint(1, min(level.max_operand, level.max_value - value))
            value += n
        else:
            n = rng.randint(1, min(level.max_operand, value))
            value -= n
        ops.append((op, n))
        verbs.append(rng.choice(ADD_VERBS if op == "+" else SUB_VERBS))
    return Problem(start, tuple(ops), rng.choice(NAMES), rng.choice(OBJECTS), tuple(verbs))


_STEP_LINE = re.compile(r"\s*(-?\d+)\s*([+-])\s*(\d+)\s*=\s*(-?\d+)\s*")
ERROR_KINDS = ("none", "sign", "arithmetic", "operand", "carried", "format", "final")


def first_error(problem: Problem, completion: str) -> str:
    """What went wrong first in a house-style answer, one of ERROR_KINDS:

    sign: the step's operator does not match its verb (e.g. `-` for "finds"); arithmetic: right operands and
    operator, wrong result; operand: the step uses a number that is not the problem's; carried: the step does not
    start from the previous result; format: a line that is not an `a+b=c` step, or too few steps; final: every
    step right but the marked answer wrong or missing; none: every step and the answer right. A right final
    answer reached through a wrong step counts by that step. Other styles (the direct Oracle's) count as format.
    """
    lines = completion.split("\n")
    values = problem.values()
    for k, (op, n) in enumerate(problem.ops):
        m = _STEP_LINE.fullmatch(lines[k]) if k < len(lines) else None
        if m is None:
            return "format"
        a, o, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        if a != values[k]:
            return "carried"
        if o != op:
            return "sign"
        if b != n:
            return "operand"
        if c != (a + b if o == "+" else a - b):
            return "arithmetic"
    return "none" if extract_answer(completion) == str(problem.answer) else "final"


# ---------------------------------------------------------------- prior-knowledge tasks


def _word(rng: random.Random, lo: int = 3, hi: int = 7) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(lo, hi)))


FOODS = ["plums", "rice", "moss", "figs", "kelp", "corn", "nuts", "seeds"]


def _facts() -> list[tuple[str, str]]:
    """32 invented facts ("the blick eats figs"): closed-book knowledge the base memorises in pretraining."""
    rng = random.Random("spot-toy/facts")
    names: list[str] = []
    while len(names) < 32:
        name = "".join(rng.choice("bdfgklmnprstvz") + rng.choice("aeiou") for _ in range(2))
        if name not in names:
            names.append(name)
    return [(name, rng.choice(FOODS)) for name in names]


FACTS = _facts()


def fact_example(name: str, food: str) -> tuple[str, str]:
    return f"What does the {name} eat?", f"{ANSWER_MARK}{food}"


def make_prior(rng: random.Random, task: str) -> tuple[str, str]:
    """One prior-knowledge example as (prompt, completion)."""
    if task == "fact":
        return fact_example(*rng.choice(FACTS))
    if task == "next":
        n = rng.randint(0, 998)
        return f"What number comes after {n}?", f"{ANSWER_MARK}{n + 1}"
    word = _word(rng)
    if task == "first":
        return f"What is the first letter of {word}?", f"{ANSWER_MARK}{word[0]}"
    if task == "reverse":
        return f"Reverse the word {word}.", f"{ANSWER_MARK}{word[::-1]}"
    if task == "sort":
        return f"Sort the letters of {word}.", f"{ANSWER_MARK}{''.join(sorted(word))}"
    if task == "count":
        letter = rng.choice(word) if rng.random() < 0.8 else rng.choice(string.ascii_lowercase)
        return f"Count the letter {letter} in {word}.", f"{ANSWER_MARK}{word.count(letter)}"
    raise ValueError(f"unknown prior task {task!r}; known: {', '.join(PRIOR_TASKS + HARD_PRIOR_TASKS)}")


# What the shipped base knows and post-training must keep: a memorised fact table, the number after n, the
# first letter of a word. Reverse, sort and count need letter-level copying that the 0.8M model did not learn
# in its pretraining budget (0% on reverse and sort after 800 steps), so they are kept for larger bases only.
PRIOR_TASKS = ("fact", "next", "first")
HARD_PRIOR_TASKS = ("reverse", "sort", "count")


def extract_answer(completion: str) -> str | None:
    """The text after the last `#### ` marker, on its line; None when the completion has no marker."""
    idx = completion.rfind(ANSWER_MARK)
    if idx < 0:
        return None
    return completion[idx + len(ANSWER_MARK) :].split("\n", 1)[0].strip()


def split_rng(seed: int, split: str) -> random.Random:
    """Disjoint, reproducible streams per split: train problems never share a stream with test ones."""
    return random.Random(f"spot-toy/{split}/{seed}")
