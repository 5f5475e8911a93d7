"""The arith Oracle: its edits change exactly the wrong characters and what follows from them, text it cannot
parse gives a countable drop reason, and its direct solutions are right."""

import asyncio
import difflib
import random
import re
from collections import Counter

import pytest

from spot.arith.checker import ArithVerifier
from spot.arith.oracle import ArithOracle, surgical_edit
from spot.arith.tasks import LEVELS, SYMBOLS, Problem, draw_problems
from spot.rectify.filtering import filter_pairs
from spot.rectify.problems import Item

# Maya has 12 apples. She buys 5 more apples. She gives away 3 apples. She finds 20 more apples. -> 34
P = Problem("Maya", "apples", 12, (("+", 5), ("-", 3), ("+", 20)), ("buys", "gives away", "finds"))
RIGHT = "12 + 5 = 17\n17 - 3 = 14\n14 + 20 = 34\nAnswer: 34"


def changes(before: str, after: str) -> list[tuple[str, str]]:
    """What changed, token by token (numbers, spaces, single characters): [(old, new), ...] in order."""
    tokens = lambda s: re.findall(r"\d+|\s+|\S", s)
    a, b = tokens(before), tokens(after)
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return [("".join(a[i1:i2]), "".join(b[j1:j2])) for tag, i1, i2, j1, j2 in ops if tag != "equal"]


def rectify(text: str, problem: Problem = P):
    return asyncio.run(ArithOracle().rectify(problem.prompt, text))


def test_wrong_result_in_step_one_is_fixed_and_later_steps_recomputed():
    wrong = "12 + 5 = 18\n18 - 3 = 15\n15 + 20 = 35\nAnswer: 35"
    fixed = surgical_edit(P, wrong)
    assert fixed == RIGHT
    assert changes(wrong, fixed) == [("18", "17"), ("18", "17"), ("15", "14"), ("15", "14"), ("35", "34"),
                                     ("35", "34")]


def test_wrong_operator_for_the_verb_is_replaced():
    wrong = "12 - 5 = 7\n7 - 3 = 4\n4 + 20 = 24\nAnswer: 24"  # subtracts for "buys"
    fixed = surgical_edit(P, wrong)
    assert fixed == RIGHT
    assert changes(wrong, fixed)[:2] == [("-", "+"), ("7", "17")]  # the operator, then the numbers it moved
    assert len(changes(wrong, fixed)) == 7


def test_wrong_operand_copied_from_the_problem_is_replaced():
    wrong = "12 + 3 = 15\n15 - 3 = 12\n12 + 20 = 32\nAnswer: 32"  # "gives away 3" used for "buys 5"
    assert surgical_edit(P, wrong) == RIGHT
    assert changes(wrong, RIGHT) == [("3", "5"), ("15", "17"), ("15", "17"), ("12", "14"), ("12", "14"),
                                     ("32", "34"), ("32", "34")]


def test_a_later_wrong_step_keeps_the_right_prefix_verbatim():
    wrong = "12 + 5 = 17\n17 - 3 = 14\n14 + 20 = 36\nAnswer: 36"
    assert changes(wrong, surgical_edit(P, wrong)) == [("36", "34"), ("36", "34")]


def test_a_right_solution_is_unchanged():
    chatty = "Let's see.\n* 5 + 12 = 17\n* 17 − 3 = 14\n* 14 + 20 = 34\n\n**Answer: 34** apples"
    for text in (RIGHT, chatty, RIGHT.replace(" ", "")):
        assert surgical_edit(P, text) == text


def test_chatter_wording_spacing_and_restated_results_are_kept_or_follow():
    wrong = ("Sure! Let's solve it step by step.\n\nStep 1: Maya buys 5 more apples: 12+5=18 apples.\n"
             "So now she has 18 apples.\nStep 2: She gives away 3, so 18 -3 = 15.\n"
             "Step 3: 15 + 20 = 35\n\nAnswer: 35 apples.\nI hope this helps!")
    fixed = surgical_edit(P, wrong)
    assert fixed == ("Sure! Let's solve it step by step.\n\nStep 1: Maya buys 5 more apples: 12+5=17 apples.\n"
                     "So now she has 17 apples.\nStep 2: She gives away 3, so 17 -3 = 14.\n"
                     "Step 3: 14 + 20 = 34\n\nAnswer: 34 apples.\nI hope this helps!")
    assert ArithVerifier()(fixed, "34").correct
    # a wrong result that is also a number of the problem may be the problem quoted: the prose keeps it
    cites = "12 + 5 = 20\nThen she gives away 3, and later finds 20 more.\n20 - 3 = 17\n17 + 20 = 37\nAnswer: 37"
    assert surgical_edit(P, cites) == ("12 + 5 = 17\nThen she gives away 3, and later finds 20 more.\n17 - 3 = 14\n"
                                       "14 + 20 = 34\nAnswer: 34")


def test_the_models_symbols_markdown_and_operand_order_are_kept():
    q = Problem("Tom", "books", 3, (("*", 4), ("+", 2), ("/", 2)), ("boxes", "finds", "friends"))
    wrong = "**Step 1:** 4 × 3 = 12\n**Step 2:** 12 + 2 = 14\n**Step 3:** 14 - 2 = 12\n\\boxed{12}"
    fixed = surgical_edit(q, wrong)
    assert fixed == "**Step 1:** 4 × 3 = 12\n**Step 2:** 12 + 2 = 14\n**Step 3:** 14 / 2 = 7\n\\boxed{7}"
    wrong_product = "3 x 5 = 15\n15 + 2 = 17\n17 ÷ 2 = 8\nAnswer: 8"
    assert surgical_edit(q, wrong_product) == "3 x 4 = 12\n12 + 2 = 14\n14 ÷ 2 = 7\nAnswer: 7"
    two_minus = Problem("Leo", "cards", 20, (("-", 5), ("-", 3)), ("loses", "sells"))
    wrong_op = "20 − 5 = 15\n15 + 3 = 18\nAnswer: 18"  # a fixed operator is written with the model's own symbol
    assert surgical_edit(two_minus, wrong_op) == "20 − 5 = 15\n15 − 3 = 12\nAnswer: 12"


def test_missing_steps_and_a_missing_answer_line_are_added():
    assert surgical_edit(P, "12 + 5 = 17\nAnswer: 17") == RIGHT
    same_line = "12 + 5 = 17, then \n17 - 3 = 14\n14 + 20 = 34\nAnswer: 34"  # the steps go before the answer
    assert surgical_edit(P, "12 + 5 = 17, then Answer: 17") == same_line
    assert surgical_edit(P, "12 + 5 = 17\n17 - 3 = 14\n14 + 20 = 34\nSo Maya has 34.") == (
        "12 + 5 = 17\n17 - 3 = 14\n14 + 20 = 34\nSo Maya has 34.\nAnswer: 34")


@pytest.mark.parametrize("text, why", [
    ("Maya has twelve apples, then seventeen, then fourteen, then thirty-four.", "no_steps"),
    ("12 + 5 - 3 = 14\n14 + 20 = 34\nAnswer: 34", "chained"),
    ("12 + 5 = 17 - 3 = 14\n14 + 20 = 34\nAnswer: 34", "chained"),
    ("(12 + 5) - 3 = 14\n14 + 20 = 34\nAnswer: 34", "other_calc"),
    (RIGHT.replace("Answer: 34", "34 + 0 = 34\nAnswer: 34"), "extra_steps"),
    ("12 + 5 = 17\n17 - 3 = 14\nAnswer: 14 + 20 = 34", "answer_in_step"),
])
def test_unparseable_text_gives_no_pair_and_a_reason(text, why):
    reply = rectify(text)
    assert reply.text is None and reply.error == f"unparseable:{why}"


def test_unreadable_problem_is_its_own_reason():
    oracle = ArithOracle()
    for reply in (asyncio.run(oracle.rectify("What is 2 + 2?", RIGHT)), asyncio.run(oracle.solve("Hello."))):
        assert reply.text is None and reply.error == "problem_unreadable"


def test_unparseable_is_a_distinct_countable_drop_reason():
    texts = {"a": "12 + 5 = 18\n18 - 3 = 15\n15 + 20 = 35\nAnswer: 35", "b": "I do not know.",
             "c": "Thirty apples. Answer: 30", "d": "12 + 5 - 3 = 14\nAnswer: 14"}
    replies = {f"rectify:{k}": rectify(v) for k, v in texts.items()}
    wrong = [Item(id=k, prompt=P.prompt, answer="34") for k in texts]
    out = filter_pairs(wrong, texts, replies, ArithVerifier(), list, gamma=1.0, oracle_name="arith")
    assert [r["id"] for r in out.rows] == ["a"] and out.rows[0]["chosen"] == RIGHT
    assert Counter(d["reason"] for d in out.drops) == {"oracle_error:unparseable:no_steps": 2,
                                                       "oracle_error:unparseable:chained": 1}


def slip(problem: Problem, rng: random.Random) -> str:
    """The prompt's format with one slip at a random step (a result off, the other operator, the other +/-
    number), carried through as a model would."""
    k, kind = rng.randrange(len(problem.ops)), rng.choice(["result", "operator"])
    lines, value = [], problem.start
    for j, (op, n) in enumerate(problem.ops):
        a = value
        if j == k and kind == "operator" and op in "+-":
            op = "-" if op == "+" else "+"
        value = {"+": a + n, "-": a - n, "*": a * n, "/": a // n}[op] + (rng.choice([-2, 1, 3]) if j == k and
                                                                           kind == "result" else 0)
        lines.append(f"{a} {SYMBOLS[op]} {n} = {value}")
    return "\n".join([*lines, f"Answer: {value}"])


@pytest.mark.parametrize("name", list(LEVELS))
def test_any_slip_is_edited_back_to_the_right_solution(name):
    rng = random.Random(name)
    for p in draw_problems("test", 60, 0, LEVELS[name]):
        wrong = slip(p, rng)
        assert rectify(wrong, p).text == p.solution(), (p.text, wrong)


@pytest.mark.parametrize("name", list(LEVELS))
def test_direct_solutions_are_right_and_in_another_style(name):
    check = ArithVerifier()
    for p in draw_problems("val", 40, 0, LEVELS[name]):
        reply = asyncio.run(ArithOracle().solve(p.prompt))
        assert check(reply.text, str(p.answer)).correct and reply.text.startswith("First, ")
        assert "=" not in reply.text and "Answer:" not in reply.text


def test_rectify_pipeline_with_the_arith_world_counts_pairs_and_unparseable_drops(tmp_path):
    """problems=arith, oracle=arith through spot.rectify.pipeline.run, with a scripted policy instead of a model."""
    from spot.arith.problems import arith_items
    from spot.rectify.config import RectifyConfig
    from spot.rectify.pipeline import run

    items = arith_items("L2", n=12)
    problems = {it.prompt: draw for it, draw in zip(items, draw_problems("train", 12, 0, LEVELS["L2"]))}
    rng = random.Random(0)

    def policy(prompts: list[str], seed: int) -> list[str]:  # right, one slip, or words only, in turn
        return [problems[p].solution() if k % 3 == 0 else slip(problems[p], rng) if k % 3 == 1 else "No idea."
                for k, p in enumerate(prompts)]

    report = run(items, policy, list, ArithVerifier(), ArithOracle(), RectifyConfig(out_dir=str(tmp_path),
                 progress=False, gamma=1.0), {"samples": {}, "oracle": {}})
    counts, drops = report["counts"], report["drops"]["rectify"]
    assert (counts["correct"], counts["wrong"], counts["pairs"], counts["direct"]) == (4, 8, 4, 12)
    assert drops == {"oracle_error:unparseable:no_steps": 4}
    assert (tmp_path / "pairs.jsonl").read_text().count("\n") == counts["pairs"]
