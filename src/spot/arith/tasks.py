"""The arith world's problems: arithmetic word problems in plain English, a chain of steps on one quantity.

    Maya has 4 boxes with 6 apples in each box. She buys 5 more apples. She gives away 9 apples.
    She shares them equally among 4 friends. How many apples does each friend get?

    Solve it step by step. Write each step on its own line as one calculation, like 7 + 5 = 12.
    On the last line, write "Answer:" and then the number.

The verb says the operation: "buys", "finds", "gets", "wins", "picks up", "is given" add; "gives away", "loses",
"sells", "donates", "eats" subtract; "has N boxes with M ... in each box" multiplies (only as the first step);
"shares them equally among K friends" / "puts them equally into K bags" divides exactly (only as the last step).
Every step combines the running value with one new number of the problem, so a solution is one `a op b = c`
line per step, then `Answer: N` (`Problem.solution`).

How hard a problem is comes from its `Level` (steps, value range, operations); `LEVELS` names six, from
one step on numbers up to 10 (L0) to long chains of all four operations (L5). Which one is the in-domain level
is chosen by a pilot on the base model (README, "The arith world"), not here. Every split draws from its own
seeded stream (`split_rng`) and keeps only the stories whose hash falls in its share (`bucket`), so training
never sees a validation or test story, whatever the seeds, sizes and levels.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace

from spot.errors import ConfigError

# The prompt's own instruction: the arith prompt is self-contained (model.problem_template "{prompt}"). Which
# one the world uses is chosen with its level by the pilot on the base model (README, "The arith world"):
# "example" shows a step; "plain" shows none, since a small model may copy an example's numbers as a step.
INSTRUCTIONS = {
    "example": ("Solve it step by step. Write each step on its own line as one calculation, like 7 + 5 = 12.\n"
                'On the last line, write "Answer:" and then the number.'),
    "plain": ('Solve it step by step, with one calculation on each line.\nOn the last line, write "Answer:" and '
              "then the number."),
    # a whole worked problem: the format shown rather than described, as few-shot prompts show small models.
    # Its story's name and object are none the world draws, so it is never one of the problems.
    "worked": ('Solve it step by step, with one calculation on each line. On the last line, write "Answer:" and '
               "then the number.\nHere is how another problem is solved.\nProblem: Sam has 8 kites. He buys 5 "
               "more kites. He gives away 3 kites. How many kites does Sam have now?\nSolution:\n8 + 5 = 13\n"
               "13 - 3 = 10\nAnswer: 10"),
    # round 4: the base's greedy answers loop (the same line again and again) and never reach the answer line;
    # both ask for the calculations only and an end, without numbers to copy
    "short": ('Solve it step by step. Write only the calculations, one on each line, like "a + b = c". Then write '
              '"Answer:" and the number, and stop.'),
    "brief": ('Give a short solution: one calculation on each line, then "Answer:" and the number on the last line. '
              "Do not repeat yourself."),
}
INSTRUCTION = INSTRUCTIONS["example"]

NAMES = {"Maya": "She", "Tom": "He", "Lena": "She", "Omar": "He", "Priya": "She", "Ben": "He", "Sofia": "She",
         "Leo": "He", "Nina": "She", "Jack": "He", "Emma": "She", "Ravi": "He", "Grace": "She", "Felix": "He",
         "Zara": "She", "Hugo": "He"}
FOODS = ("apples", "oranges", "cookies", "candies", "muffins", "plums")
OBJECTS = (*FOODS, "marbles", "stickers", "pencils", "stamps", "books", "shells", "cards", "crayons", "buttons")
ADD_VERBS = ("buys", "finds", "gets", "wins", "picks up", "is given")
SUB_VERBS = ("gives away", "loses", "sells", "donates")
FOOD_SUB_VERBS = ("eats",)  # only said of food
VERB_OPS = {**dict.fromkeys(ADD_VERBS, "+"), **dict.fromkeys(SUB_VERBS + FOOD_SUB_VERBS, "-")}
CONTAINERS = {"boxes": "box", "bags": "bag", "jars": "jar", "baskets": "basket", "packs": "pack"}
# an equal share, the last step: word -> (sentence after the pronoun, question)
SHARES = {"friends": ("shares them equally among {k} friends.", "How many {obj} does each friend get?"),
          "bags": ("puts them equally into {k} bags.", "How many {obj} are in each bag?")}
SYMBOLS = {"+": "+", "-": "-", "*": "*", "/": "/"}
OPERATIONS = tuple(SYMBOLS)


def apply(op: str, a: int, b: int) -> int:
    """One step's result; division is exact in every generated problem."""
    return {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]


@dataclass(frozen=True)
class Level:
    """How hard a problem is: its number of steps, the range every number stays in, the operations it uses."""

    min_steps: int
    max_steps: int
    max_value: int  # the start and every running value stay in [1, max_value]
    max_operand: int  # the largest number added or taken away
    max_factor: int = 10  # boxes, items per box and equal shares are in [2, max_factor]
    ops: tuple[str, ...] = ("+", "-")  # "*" as the first step, "/" as the last, "+"/"-" anywhere

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ops) - set(OPERATIONS))
        if unknown or not self.ops:
            raise ConfigError(f"arith level ops={list(self.ops)}: use some of {', '.join(OPERATIONS)}")
        if not 1 <= self.min_steps <= self.max_steps:
            raise ConfigError(f"arith level steps {self.min_steps}-{self.max_steps}: need 1 <= min <= max")
        if not {"+", "-"} & set(self.ops) and self.max_steps > ("*" in self.ops) + ("/" in self.ops):
            raise ConfigError("arith level: without + or - a problem has at most one * and one / step")
        if self.max_value < 4 or self.max_operand < 1 or ({"*", "/"} & set(self.ops) and self.max_factor < 2):
            raise ConfigError("arith level: need max_value >= 4, max_operand >= 1, max_factor >= 2")


# Named levels for the pilot (docs: README "The arith world"): one small step up to long chains of all four.
LEVELS = {
    "L0": Level(1, 1, max_value=10, max_operand=5),
    "L1": Level(1, 1, max_value=20, max_operand=10),
    "L2": Level(2, 2, max_value=50, max_operand=20),
    "L3": Level(2, 3, max_value=100, max_operand=30, ops=("+", "-", "*")),
    "L4": Level(3, 4, max_value=200, max_operand=50, ops=("+", "-", "*", "/")),
    "L5": Level(4, 6, max_value=500, max_operand=100, max_factor=12, ops=("+", "-", "*", "/")),
}


def level_of(spec: str | Mapping) -> tuple[str, Level]:
    """(label, Level) from a config value: a name of LEVELS, or a mapping of Level's fields (label "custom")."""
    if isinstance(spec, str):
        if spec not in LEVELS:
            raise ConfigError(f"arith level={spec!r}: use one of {', '.join(LEVELS)} or a mapping of its fields")
        return spec, LEVELS[spec]
    fields = dict(spec)
    unknown = sorted(set(fields) - set(Level.__dataclass_fields__))
    if unknown:
        known = ", ".join(Level.__dataclass_fields__)
        raise ConfigError(f"arith level: unknown field {unknown[0]!r} (known: {known})")
    if "ops" in fields:
        fields["ops"] = tuple(fields["ops"])
    return "custom", Level(**fields)


def longer(level: Level, extra_steps: int) -> Level:
    """The OOD level: the same numbers and operations in chains 1 to `extra_steps` steps longer than any of
    `level`'s."""
    if extra_steps < 1:
        raise ConfigError(f"arith ood extra_steps={extra_steps}: must be at least 1")
    return replace(level, min_steps=level.max_steps + 1, max_steps=level.max_steps + extra_steps)


@dataclass(frozen=True)
class Problem:
    name: str
    obj: str
    start: int  # the number held at first, or the number of boxes when the first step multiplies
    ops: tuple[tuple[str, int], ...]  # (("*", 6), ("+", 5), ("/", 4)): each step's operation and new number
    words: tuple[str, ...]  # per step: its verb, container ("boxes") or share ("friends")

    def values(self) -> list[int]:
        """The running value before the first step and after each step."""
        out = [self.start]
        for op, n in self.ops:
            out.append(apply(op, out[-1], n))
        return out

    def steps(self) -> list[tuple[int, str, int, int]]:
        """Each step as (a, op, b, c): the running value, the operation, the problem's number, the result."""
        values = self.values()
        return [(values[k], op, n, values[k + 1]) for k, (op, n) in enumerate(self.ops)]

    @property
    def answer(self) -> int:
        return self.values()[-1]

    @property
    def text(self) -> str:
        """The story and its question, without the instruction."""
        pron, steps = NAMES[self.name], list(zip(self.ops, self.words, strict=True))
        if steps[0][0][0] == "*":
            (_, per), box = steps.pop(0)
            out = [f"{self.name} has {self.start} {box} with {per} {self.obj} in each {CONTAINERS[box]}."]
        else:
            out = [f"{self.name} has {self.start} {self.obj}."]
        question = f"How many {self.obj} does {self.name} have now?"
        for (op, n), word in steps:
            if op == "/":
                sentence, question = SHARES[word]
                out.append(f"{pron} {sentence.format(k=n)}")
                question = question.format(obj=self.obj)
            else:
                out.append(f"{pron} {word} {n}{' more' if op == '+' else ''} {self.obj}.")
        return " ".join([*out, question])

    @property
    def prompt(self) -> str:
        """What the model is asked: the story, then the instruction for the step format."""
        return self.prompt_with("example")

    def prompt_with(self, instruction: str) -> str:
        if instruction not in INSTRUCTIONS:
            raise ConfigError(f"arith instruction={instruction!r}: use one of {', '.join(INSTRUCTIONS)}")
        return f"{self.text}\n\n{INSTRUCTIONS[instruction]}"

    def solution(self) -> str:
        """The format the prompt asks for: one `a op b = c` line per step, then `Answer: N`."""
        lines = [f"{a} {SYMBOLS[op]} {b} = {c}" for a, op, b, c in self.steps()]
        return "\n".join([*lines, f"Answer: {self.answer}"])


# ----------------------------------------------------------------------------- reading a story back

_WORD = {"+": "plus", "-": "minus", "*": "times", "/": "divided by"}
_PRODUCT = re.compile(r"(?P<name>[A-Z]\w*) has (?P<start>\d+) (?P<box>\w+) with (?P<n>\d+) (?P<obj>\w+) in each \w+\.")
_PLAIN = re.compile(r"(?P<name>[A-Z]\w*) has (?P<start>\d+) (?P<obj>\w+)\.")
_VERB = re.compile(r"(?:He|She) (?P<verb>[a-z ]+?) (?P<n>\d+)(?: more)? \w+\.")
_SHARE = {word: re.compile("(?:He|She) " + re.escape(s).replace(re.escape("{k}"), r"(?P<n>\d+)"))
          for word, (s, _) in SHARES.items()}
_SENTENCE = re.compile(r"[^.?]+[.?]")


def _step_of(sentence: str) -> tuple[tuple[str, int], str]:
    """((op, n), word) of one step sentence; ValueError when it is none the world writes."""
    for word, pattern in _SHARE.items():
        m = pattern.fullmatch(sentence)
        if m:
            return ("/", int(m["n"])), word
    m = _VERB.fullmatch(sentence)
    if m is None or m["verb"] not in VERB_OPS:
        raise ValueError(f"not a step of the arith world: {sentence!r}")
    return (VERB_OPS[m["verb"]], int(m["n"])), m["verb"]


def parse_problem(prompt: str) -> Problem:
    """Inverse of `Problem.prompt` (and of `Problem.text`): the Oracle reads the problem as text, as a real
    Oracle would. ValueError when the text is not an arith problem."""
    sentences = [s.strip() for s in _SENTENCE.findall(prompt.split("\n\n", 1)[0])]
    if len(sentences) < 2 or not sentences[-1].startswith("How many"):
        raise ValueError(f"not an arith problem: {prompt[:60]!r}")
    head = _PRODUCT.fullmatch(sentences[0]) or _PLAIN.fullmatch(sentences[0])
    if head is None:
        raise ValueError(f"not an arith problem's first sentence: {sentences[0]!r}")
    first = [(("*", int(head["n"])), head["box"])] if "box" in head.groupdict() else []
    steps = first + [_step_of(s) for s in sentences[1:-1]]
    if not steps:
        raise ValueError(f"an arith problem without a step: {prompt[:60]!r}")
    return Problem(head["name"], head["obj"], int(head["start"]), tuple(s for s, _ in steps),
                   tuple(w for _, w in steps))


def direct_solution(problem: Problem) -> str:
    """Another house style than the prompt's, as a strong model would write from scratch (the SFT data):
    full sentences, `First, 12 plus 5 makes 17. Then, 17 minus 3 makes 14. So the answer is 14.`"""
    sentences = [f"{'First' if k == 0 else 'Then'}, {a} {_WORD[op]} {b} makes {c}."
                 for k, (a, op, b, c) in enumerate(problem.steps())]
    return " ".join([*sentences, f"So the answer is {problem.answer}."])


# ----------------------------------------------------------------------------- drawing problems

MAX_TRIES = 1000  # draws before a level is declared unable to make problems


def _plan(rng: random.Random, level: Level, k: int) -> list[str] | None:
    """The operation kinds of k steps: maybe a product first, maybe an equal share last, + or - between."""
    addsub = [op for op in ("+", "-") if op in level.ops]
    first = "*" in level.ops and (not addsub or rng.random() < 0.5)
    last = "/" in level.ops and k > first and (not addsub or rng.random() < 0.5)
    middle = k - first - last
    if middle and not addsub:
        return None
    return ["*"] * first + ["+-"] * middle + ["/"] * last


def _addsub(rng: random.Random, level: Level, obj: str, ops: str, value: int) -> tuple[str, int, str] | None:
    """(op, n, verb) of one + or - step from `value` that keeps the running value in [1, max_value]."""
    room = {"+": min(level.max_operand, level.max_value - value), "-": min(level.max_operand, value - 1)}
    feasible = [op for op in ops if op in level.ops and room[op] >= 1]
    if not feasible:
        return None
    op = rng.choice(feasible)
    verbs = ADD_VERBS if op == "+" else SUB_VERBS + (FOOD_SUB_VERBS if obj in FOODS else ())
    return op, rng.randint(1, room[op]), rng.choice(verbs)


def _try_problem(rng: random.Random, level: Level, k: int) -> Problem | None:
    """One draw of a k-step problem; None when the draw hits a dead end (no + or - fits, no exact share)."""
    plan, name, obj = _plan(rng, level, k), rng.choice(list(NAMES)), rng.choice(OBJECTS)
    if plan is None:
        return None
    ops, words = [], []
    if plan[0] == "*":
        start = rng.randint(2, min(level.max_factor, level.max_value // 2))
        ops.append(("*", rng.randint(2, min(level.max_factor, level.max_value // start))))
        words.append(rng.choice(list(CONTAINERS)))
    else:
        start = rng.randint(2, level.max_value)
    value = start * ops[0][1] if ops else start
    for kind in plan[len(ops):]:
        if kind == "/":
            shares = [d for d in range(2, level.max_factor + 1) if value % d == 0]
            if not shares:
                return None
            ops.append(("/", rng.choice(shares)))
            words.append(rng.choice([w for w in SHARES if w not in words]))  # not "9 bags ... into 2 bags"
        else:
            step = _addsub(rng, level, obj, kind, value)
            if step is None:
                return None
            ops.append(step[:2])
            words.append(step[2])
        value = apply(ops[-1][0], value, ops[-1][1])
    return Problem(name, obj, start, tuple(ops), tuple(words))


def make_problem(rng: random.Random, level: Level) -> Problem:
    """A problem of `level`: its step count drawn from the level's range, redrawn on a dead end."""
    k = rng.randint(level.min_steps, level.max_steps)
    for _ in range(MAX_TRIES):
        problem = _try_problem(rng, level, k)
        if problem is not None:
            return problem
    raise ConfigError(f"arith level {level}: no problem in {MAX_TRIES} draws; widen its value range")


def split_rng(seed: int, split: str) -> random.Random:
    """Reproducible streams, one per split: a suite's items do not depend on which other suites are drawn."""
    return random.Random(f"spot-arith/{split}/{seed}")


# A story's share of the problem space, by its hash: 1 in 10 validation, 2 in 10 test (in-domain and OOD),
# the rest training. Disjoint by construction, for any seeds, sizes and levels.
BUCKETS = {"train": range(3, 10), "val": range(0, 1), "test": range(1, 3), "ood": range(1, 3)}


def bucket_of(story: str) -> int:
    return int.from_bytes(hashlib.sha256(story.encode()).digest()[:8], "big") % 10


def draw_problems(split: str, n: int, seed: int, level: Level) -> list[Problem]:
    """`n` problems of `level` from the split's own stream, each in the split's share of stories."""
    rng, share = split_rng(seed, split), BUCKETS[split]
    out: list[Problem] = []
    while len(out) < n:
        problem = make_problem(rng, level)
        if bucket_of(problem.text) in share:
            out.append(problem)
    return out
