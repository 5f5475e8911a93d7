"""A programmatic Oracle for the toy world, behind the same interface as the real Oracles.

`rectify` makes the surgical edit: it walks the policy's step lines against the problem, keeps every line up
to the first wrong one verbatim, corrects the numbers of the first wrong step and recomputes the steps after it,
keeping the policy's spacing and any text around the numbers. `solve` writes a from-scratch solution in a
different house style, as a strong external model would (the SFT baseline's data).
"""

from __future__ import annotations

import re

from spot.rectify.oracles.base import Oracle, OracleReply
from spot.toy.tasks import ANSWER_MARK, Problem, parse_problem

# a step line: "12+5=17", spacing kept in groups so that an edit changes numbers only
_STEP = re.compile(r"^(?P<pre>\D*?)(?P<a>-?\d+)(?P<s1>\s*)(?P<op>[+-])(?P<s2>\s*)(?P<b>\d+)(?P<s3>\s*)=(?P<s4>\s*)"
                   r"(?P<c>-?\d+)(?P<post>.*)$")


def _fix_line(m: re.Match, a: int, op: str, b: int) -> str:
    c = a + b if op == "+" else a - b
    g = m.groupdict()
    return f"{g['pre']}{a}{g['s1']}{op}{g['s2']}{b}{g['s3']}={g['s4']}{c}{g['post']}"


def surgical_edit(problem: Problem, answer: str) -> str:
    """The policy's answer with the first wrong step and everything it affects corrected."""
    values = problem.values()
    out, step = [], 0
    for line in answer.split("\n"):
        if line.startswith(ANSWER_MARK):
            break  # the marker line is rewritten below
        m = _STEP.match(line)
        if m is None:
            out.append(line)  # the policy's own wording between steps is kept
            continue
        if step >= len(problem.ops):
            continue  # a step the problem does not have
        op, b = problem.ops[step]
        a = values[step]
        is_right = (int(m["a"]), m["op"], int(m["b"]), int(m["c"])) == (a, op, b, values[step + 1])
        out.append(line if is_right else _fix_line(m, a, op, b))
        step += 1
    for k in range(step, len(problem.ops)):  # steps the policy skipped, in the house style
        op, b = problem.ops[k]
        out.append(f"{values[k]}{op}{b}={values[k + 1]}")
    out.append(f"{ANSWER_MARK}{problem.answer}")
    return "\n".join(out)


class ToyOracle(Oracle):
    """Exact and free: it reads the problem text, so it needs no reference answer."""

    name = "toy"

    async def rectify(self, problem: str, answer: str, reference: str | None = None) -> OracleReply:
        try:
            text = surgical_edit(parse_problem(problem), answer)
        except ValueError as e:
            return OracleReply(text=None, error=f"toy oracle cannot read the problem: {e}")
        return OracleReply(text=text, raw=text)

    async def solve(self, problem: str, reference: str | None = None) -> OracleReply:
        try:
            text = parse_problem(problem).direct_solution()
        except ValueError as e:
            return OracleReply(text=None, error=f"toy oracle cannot read the problem: {e}")
        return OracleReply(text=text, raw=text)
