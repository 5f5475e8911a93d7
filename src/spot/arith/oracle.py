"""A programmatic minimal-edit Oracle for the arith world, behind the same interface as the real Oracles.

`rectify` reads the problem from its text and the model's calculations (`a op b = c`, anywhere in its lines,
with `+ - * x × / ÷`), and rewrites only the characters that are wrong: the first wrong step (a wrong operator
for the verb, a wrong operand, a wrong result) and every number that follows from it (later steps' operands
and results, a restatement of a wrong result before the next step, "So she has 18 apples.", unless it is also
one of the problem's numbers, and the final `Answer:` number). Operands of + and * may come in either order.
Everything else is kept: the model's wording, spacing, markdown, symbols and extra lines. Steps the model left
out are written after its last one, in the prompt's format; a missing final statement is added as a last line
`Answer: N`.

Text the edit cannot be sure of gives no pair: the reply is an error `unparseable:<why>`, counted by the
pipeline as drop reason `oracle_error:unparseable:<why>` (spot.rectify.filtering), one of
    no_steps         no calculation at all (words only, another format)
    chained          a calculation chained with another (`12 + 5 - 3 = 14`, `12 + 5 = 17 - 3 = 14`)
    other_calc       an equation outside the step format (parentheses, `x = 5 + 3`... with a digit before =)
    extra_steps      more calculations than the problem has steps
    answer_in_step   the final answer statement holds a calculation (`Answer: 12 + 5 = 17`)
A problem the Oracle cannot read is `problem_unreadable`. `solve` writes a from-scratch solution in another
house style, full sentences ("First, 12 plus 5 makes 17. ... So the answer is 14."): the SFT baseline's data.
"""

from __future__ import annotations

import re

from spot.arith.checker import NUMBER, Statement, final_statement, to_int_text
from spot.arith.tasks import SYMBOLS, Problem, direct_solution, parse_problem
from spot.rectify.oracles.base import Oracle, OracleReply

UNPARSEABLE = "unparseable"
PROBLEM_UNREADABLE = "problem_unreadable"

OP_SYMBOLS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "x": "*", "X": "*", "·": "*",
              "/": "/", "÷": "/"}
_OP = "[-+*/×xX÷−–·]"
# one calculation on one line; numbers may carry a $ sign, thousands commas, a decimal part; a carried wrong
# value may be negative (`-2 + 5 = 3`)
_CALC = re.compile(rf"(?<![\w.,])(?P<a>[-−]?{NUMBER})[ \t]*(?P<op>{_OP})[ \t]*\$?(?P<b>{NUMBER})[ \t]*=[ \t]*\$?"
                   rf"(?P<c>[-−]?{NUMBER})")
_CHAINED_BEFORE = re.compile(rf"\d[ \t]*{_OP}[ \t]*\$?\Z")  # `3 × ` before the match: `3 × 4 + 5 = 17`
_CHAINED_AFTER = re.compile(r"[ \t]*(?:[-+/×÷−–·=]|\*(?!\*)|[xX][ \t]*\d)")  # `= 17 - 3`; `17**` is markdown
_EQUATION = re.compile(r"[\d)][ \t]*=[ \t]*\$?[-−]?\d")
_STANDALONE = re.compile(rf"(?<![\w.,]){NUMBER}(?!\w)")

Edit = tuple[int, int, str]  # replace text[start:end] with the string


class Unparseable(ValueError):
    """The model's text is not one the edit can be sure of; `why` is one of the module docstring's reasons."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


def _value(number: str) -> float:
    return float(number.replace(",", "").replace("−", "-"))


def _format_like(old: str, value: int) -> str:
    """`value` written as the model wrote the number it replaces (thousands commas or not)."""
    return f"{value:,}" if "," in old else str(value)


def find_calcs(text: str) -> list[re.Match]:
    """The model's calculations in order; Unparseable when one is chained or an equation is of another kind."""
    calcs = list(_CALC.finditer(text))
    for m in calcs:
        line_start = text.rfind("\n", 0, m.start()) + 1
        if _CHAINED_BEFORE.search(text, line_start, m.start()) or _CHAINED_AFTER.match(text, m.end()):
            raise Unparseable("chained")
    if any(not any(m.start() <= e.start() < m.end() for m in calcs) for e in _EQUATION.finditer(text)):
        raise Unparseable("other_calc")
    return calcs


def _calc_edits(m: re.Match, step: tuple[int, str, int, int], symbols: dict[str, str]) -> list[Edit]:
    """The edits that make one calculation the step (a, op, b, c), changing as few numbers as possible."""
    a, op, b, c = step
    got = (_value(m["a"]), _value(m["b"]))
    orders = [(a, b), (b, a)] if op in "+*" else [(a, b)]
    left, right = min(orders, key=lambda ab: (got[0] != ab[0]) + (got[1] != ab[1]))
    edits = [(m.start(g), m.end(g), _format_like(m[g], want))
             for g, want in (("a", left), ("b", right), ("c", c)) if _value(m[g]) != want]
    if OP_SYMBOLS[m["op"]] != op:
        edits.append((m.start("op"), m.end("op"), symbols.get(op, SYMBOLS[op])))
    return edits


def _echo_edits(text: str, m: re.Match, c: int, end: int, quoted: set[int]) -> list[Edit]:
    """A wrong result restated in the text between its calculation and `end` follows the corrected one; not when
    it is also one of the problem's own numbers (`quoted`), which the text may be citing instead."""
    if _value(m["c"]) in {c, *quoted}:
        return []
    return [(e.start(), e.end(), _format_like(e[0], c)) for e in _STANDALONE.finditer(text, m.end(), end)
            if _value(e[0]) == _value(m["c"])]


def _missing_edits(text: str, calcs: list[re.Match], steps: list, stmt: Statement | None,
                   symbols: dict[str, str]) -> list[Edit]:
    """The steps the model left out, in the prompt's format, after the line of its last calculation (before the
    final statement when that is on the same line)."""
    if len(calcs) == len(steps):
        return []
    lines = "\n".join(f"{a} {symbols.get(op, SYMBOLS[op])} {b} = {c}" for a, op, b, c in steps[len(calcs):])
    last = calcs[-1].end()
    line_end = text.find("\n", last)
    line_end = len(text) if line_end < 0 else line_end
    if stmt is not None and last <= stmt.start < line_end:
        return [(stmt.start, stmt.start, f"\n{lines}\n")]
    return [(line_end, line_end, f"\n{lines}")]


def _answer_edits(text: str, stmt: Statement | None, final: int) -> list[Edit]:
    if stmt is None or stmt.num_start < 0:
        sep = "" if not text or text.endswith("\n") else "\n"
        return [(len(text), len(text), f"{sep}Answer: {final}")]
    old = text[stmt.num_start:stmt.num_end]
    return [] if to_int_text(old) == str(final) else [(stmt.num_start, stmt.num_end, _format_like(old, final))]


def _apply(text: str, edits: list[Edit]) -> str:
    """The edits (disjoint by construction) applied left to right; insertions at one place keep their order."""
    out, pos = [], 0
    for start, end, new in sorted(edits, key=lambda e: e[0]):
        out += [text[pos:start], new]
        pos = end
    return "".join([*out, text[pos:]])


def surgical_edit(problem: Problem, text: str) -> str:
    """The model's text with its first wrong step and everything that follows from it corrected."""
    calcs, steps = find_calcs(text), problem.steps()
    if not calcs:
        raise Unparseable("no_steps")
    if len(calcs) > len(steps):
        raise Unparseable("extra_steps")
    stmt = final_statement(text)
    if stmt is not None and any(m.start() <= stmt.num_start < m.end() for m in calcs):
        raise Unparseable("answer_in_step")
    symbols = {OP_SYMBOLS[m["op"]]: m["op"] for m in reversed(calcs)}  # the model's own symbol per operation
    ends = [m.start() for m in calcs[1:]] + [len(text)]
    if stmt is not None:
        ends = [stmt.start if m.end() <= stmt.start < end else end for m, end in zip(calcs, ends)]
    edits, quoted = [], {problem.start, *(n for _, n in problem.ops)}
    for m, step, end in zip(calcs, steps, ends):
        edits += _calc_edits(m, step, symbols) + _echo_edits(text, m, step[3], end, quoted)
    edits += _missing_edits(text, calcs, steps, stmt, symbols) + _answer_edits(text, stmt, problem.answer)
    return _apply(text, edits)


def _reply(text: str) -> OracleReply:
    return OracleReply(text=text, raw=text)


class ArithOracle(Oracle):
    """Exact and free: it reads the problem text, so it needs no reference answer."""

    name = "arith"

    async def rectify(self, problem: str, answer: str, reference: str | None = None) -> OracleReply:
        try:
            parsed = parse_problem(problem)
        except ValueError:
            return OracleReply(text=None, error=PROBLEM_UNREADABLE)
        try:
            return _reply(surgical_edit(parsed, answer))
        except Unparseable as e:
            return OracleReply(text=None, error=f"{UNPARSEABLE}:{e.why}")

    async def solve(self, problem: str, reference: str | None = None) -> OracleReply:
        try:
            return _reply(direct_solution(parse_problem(problem)))
        except ValueError:
            return OracleReply(text=None, error=PROBLEM_UNREADABLE)
