"""The toy world: problems round-trip through text, the Oracle's edit is surgical, the tokenizer reloads."""

import asyncio
import random
import re

import pytest

from spot.chat import ChatFormat
from spot.toy.oracle import ToyOracle, surgical_edit
from spot.toy.tasks import (
    FACTS,
    IN_DOMAIN,
    OOD,
    SLIPS,
    Problem,
    extract_answer,
    first_error,
    make_prior,
    make_problem,
    parse_problem,
    slipped_solution,
    split_rng,
)

P = Problem(12, (("+", 5), ("-", 3), ("+", 20)), "Ann", "pens", ("buys", "loses", "finds"))


def test_problem_text_solution_and_parse_round_trip():
    assert P.text == "Ann has 12 pens. Ann buys 5. Ann loses 3. Ann finds 20. How many pens?"
    assert P.solution() == "12+5=17\n17-3=14\n14+20=34\n#### 34"
    rng = random.Random(3)
    for level in (IN_DOMAIN, OOD):
        for _ in range(50):
            p = make_problem(rng, level)
            assert parse_problem(p.text) == p
            assert all(0 <= v <= level.max_value for v in p.values())
            assert level.min_steps <= len(p.ops) <= level.max_steps


def test_surgical_edit_fixes_first_wrong_step_and_recomputes_the_rest():
    wrong = "12+5=17\n17-3=15\n15+20=35\n#### 35"  # step 2's result is wrong, and it propagates
    fixed = surgical_edit(P, wrong)
    assert fixed == P.solution()
    assert fixed.split("\n")[0] == wrong.split("\n")[0]  # the correct prefix is kept verbatim


def test_surgical_edit_keeps_the_policys_spacing_and_wording():
    wrong = "12 + 5 = 17\nso 17 - 4 = 13 ok\n13 + 20 = 33\n#### 33"
    assert surgical_edit(P, wrong) == "12 + 5 = 17\nso 17 - 3 = 14 ok\n14 + 20 = 34\n#### 34"


def test_surgical_edit_adds_skipped_steps_and_drops_extra_ones():
    assert surgical_edit(P, "12+5=17\n#### 17") == P.solution()
    assert surgical_edit(P, P.solution().replace("#### 34", "34+1=35\n#### 35")) == P.solution()


def test_oracle_interface_rectify_solve_and_unreadable_problem():
    oracle = ToyOracle()
    reply = asyncio.run(oracle.rectify(P.text, "12+5=18\n18-3=15\n15+20=35\n#### 35"))
    assert reply.text == P.solution() and reply.error is None
    direct = asyncio.run(oracle.solve(P.text)).text
    assert extract_answer(direct) == "34" and "=" not in direct.split("\n")[0]  # another house style
    bad = asyncio.run(oracle.rectify("What is the capital of France?", "Paris"))
    assert bad.text is None and "cannot read" in bad.error


@pytest.mark.parametrize("answer, kind", [
    ("12+5=17\n17-3=14\n#### 14", "none"),
    ("12-5=7\n7-3=4\n#### 4", "sign"),           # "buys" is +
    ("12+5=18\n18-3=15\n#### 15", "arithmetic"),
    ("12+5=17\n17-4=13\n#### 13", "operand"),
    ("12+5=17\n16-3=13\n#### 13", "carried"),
    ("12+5=17\n17-3=14\n#### 15", "final"),
    ("12+5=17\n#### 17", "format"),                # a step missing
    ("We begin with 12.\nAdd 5 to get 17.\nTake away 3 to get 14.\n#### 14", "format"),
    ("12+5=16\n16-3=14\n#### 14", "arithmetic"),  # right answer, wrong step: counted by the step
])
def test_first_error_names_what_went_wrong_first(answer, kind):
    problem = parse_problem("Ann has 12 pens. Ann buys 5. Ann loses 3. How many pens?")
    assert first_error(problem, answer) == kind


def test_prior_tasks_and_answer_extraction():
    rng = random.Random(0)
    q, c = make_prior(rng, "next")
    assert int(extract_answer(c)) == int(q.removeprefix("What number comes after ").rstrip("?")) + 1
    q, c = make_prior(rng, "first")
    assert extract_answer(c) == q.removeprefix("What is the first letter of ").rstrip("?")[0]
    q, c = make_prior(rng, "fact")
    assert (q.split()[3], extract_answer(c)) in FACTS and len(dict(FACTS)) == 32
    q, c = make_prior(rng, "reverse")
    word = q.removeprefix("Reverse the word ").rstrip(".")
    assert extract_answer(c) == word[::-1]
    q, c = make_prior(rng, "sort")
    assert extract_answer(c) == "".join(sorted(q.removeprefix("Sort the letters of ").rstrip(".")))
    assert extract_answer("no marker here") is None
    with pytest.raises(ValueError, match="unknown prior task"):
        make_prior(rng, "translate")


def test_splits_are_disjoint_streams():
    a = [make_problem(split_rng(0, "train"), IN_DOMAIN).text for _ in range(1)]
    b = [make_problem(split_rng(0, "test"), IN_DOMAIN).text for _ in range(1)]
    assert a != b


def test_tokenizer_and_model_reload_through_auto_classes(micro_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer


    tok = AutoTokenizer.from_pretrained(micro_model_dir)
    text = "12+5=17\n#### 17"
    assert tok.decode(tok(text, add_special_tokens=False).input_ids) == text
    assert ChatFormat(tok).prompt_text("Sort the letters of cab.") == "Q: Sort the letters of cab.\nA: "
    model = AutoModelForCausalLM.from_pretrained(micro_model_dir)
    assert model.config.model_type == "qwen3"


def test_batched_generation_equals_one_at_a_time(micro_model_dir):
    """Left padding must not change greedy outputs."""
    from spot.engines.hf import HFEngine
    from spot.generation import Sampling, generate
    from spot.models import load_model, load_tokenizer

    tok = load_tokenizer(micro_model_dir)
    model = HFEngine(load_model(micro_model_dir), tok)
    prompts = ["Ann has 1 pens. How many pens?", "Sort the letters of zyx.", "Count the letter a in aaab."]
    s = Sampling(max_new_tokens=12, batch_size=8)
    together = generate(model, ChatFormat(tok), prompts, s, progress=False)
    alone = [generate(model, ChatFormat(tok), [p], s, progress=False)[0] for p in prompts]
    assert together == alone


@pytest.mark.parametrize("slip", SLIPS)
def test_a_slipped_solution_has_one_wrong_step_and_carries_on_from_it(slip):
    rng, kinds, verbs = random.Random(3), set(), set()
    for _ in range(300):
        p = make_problem(rng, IN_DOMAIN)
        text = slipped_solution(p, slip, rng)
        if text is None:  # no step of this chain admits the slip without a negative number
            continue
        lines = text.split("\n")
        steps = [tuple(int(x) for x in re.fullmatch(r"(\d+)[+-](\d+)=(\d+)", line).groups()) for line in lines[:-1]]
        ops = [line.split("=")[0].strip("0123456789")[0] for line in lines[:-1]]
        wrong = [k for k, ((a, b, c), op) in enumerate(zip(steps, ops))
                 if op != p.ops[k][0] or c != (a + b if op == "+" else a - b)]
        assert len(wrong) == 1, text  # exactly one slipped step, every later one right from the slipped value
        k = wrong[0]
        assert all(steps[j][0] == steps[j - 1][2] for j in range(1, len(steps)))  # carried on
        assert [b for _, b, _ in steps] == [n for _, n in p.ops]                  # the problem's numbers
        assert lines[-1] == f"#### {steps[-1][2]}" != f"#### {p.answer}"
        kinds.add(first_error(p, text))
        if slip != "result":
            verbs.add(p.ops[k][0])
            assert ops[k] != p.ops[k][0]
    assert kinds == {"arithmetic" if slip == "result" else "sign"}
    assert verbs == ({slip[-1]} if slip != "result" else set())


def test_the_slips_corpus_is_verb_balanced_and_the_clean_stream_is_unchanged():
    from spot.toy.pretrain import sample_example

    r1, r2 = random.Random(5), random.Random(5)
    clean = [sample_example(r1, 0.3) for _ in range(200)]
    # slip_fraction=0 takes no extra draw: the stream is the one the shipped base was trained on
    assert clean == [sample_example(r2, 0.3, slip_fraction=0.0) for _ in range(200)]
    rng, counts = random.Random(7), {"none": 0, "+": 0, "-": 0, "arithmetic": 0}
    for _ in range(6000):
        q, a = sample_example(rng, 0.0, slip_fraction=0.1)
        p = parse_problem(q)
        kind = first_error(p, a)
        if kind == "sign":
            lines = a.split("\n")
            k = next(k for k, (op, _) in enumerate(p.ops) if (("+" in lines[k]) != (op == "+")))
            kind = p.ops[k][0]
        counts[kind] += 1
    slipped = counts["+"] + counts["-"] + counts["arithmetic"]
    assert 0.08 < slipped / 6000 < 0.12
    assert abs(counts["+"] - counts["-"]) < 0.25 * (counts["+"] + counts["-"]) / 2 + 10
    assert abs(counts["arithmetic"] - (counts["+"] + counts["-"])) < 0.2 * slipped


def test_the_candidate_ood_splits_are_what_their_names_say():
    from spot.toy.suites import toy_suite
    from spot.toy.tasks import NAMES, NEW_NAMES, NEW_OBJECTS, OBJECTS

    (long,) = toy_suite("ood_long", 50)
    (reworded,) = toy_suite("ood_reworded", 50)
    (names,) = toy_suite("ood_names", 50)
    (test,) = toy_suite("in_domain", 50)
    assert {len(parse_problem(q).ops) for q in long.prompts} == {5}
    assert all(max(parse_problem(q).values()) <= IN_DOMAIN.max_value for q in long.prompts)
    for q, a in zip(reworded.prompts, reworded.answers):
        p = parse_problem(q)
        assert q.startswith(f"{p.name} starts with") and q.endswith("have now?") and str(p.answer) == a
        assert 2 <= len(p.ops) <= 4
    for q in names.prompts:
        p = parse_problem(q)
        assert p.name in NEW_NAMES and p.obj in NEW_OBJECTS and p.name not in NAMES and p.obj not in OBJECTS
    assert len({*long.prompts, *reworded.prompts, *names.prompts, *test.prompts}) == 200
