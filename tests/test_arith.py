"""The arith world: problems, levels, splits, the answer check on free text, the prior probes, the configs."""

import random
import re
from pathlib import Path

import pytest
import yaml

from spot.arith.checker import ArithVerifier, extract_answer
from spot.arith.prior import INSTRUCTIONS, REQUESTS, kl_prompts, prior_items
from spot.arith.problems import arith_items
from spot.arith.suites import arith_prior_suite, arith_suite
from spot.arith.tasks import (
    INSTRUCTION,
    LEVELS,
    Level,
    Problem,
    direct_solution,
    draw_problems,
    level_of,
    longer,
    make_problem,
    parse_problem,
    split_rng,
)
from spot.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
P = Problem("Maya", "apples", 4, (("*", 6), ("+", 5), ("-", 9), ("/", 4)), ("boxes", "buys", "gives away", "friends"))


def test_problem_text_prompt_solution_and_round_trip():
    assert P.text == ("Maya has 4 boxes with 6 apples in each box. She buys 5 more apples. She gives away 9 apples. "
                      "She shares them equally among 4 friends. How many apples does each friend get?")
    assert P.prompt == f"{P.text}\n\n{INSTRUCTION}" and "Answer:" in INSTRUCTION
    assert P.solution() == "4 * 6 = 24\n24 + 5 = 29\n29 - 9 = 20\n20 / 4 = 5\nAnswer: 5"
    assert direct_solution(P) == ("First, 4 times 6 makes 24. Then, 24 plus 5 makes 29. Then, 29 minus 9 makes 20. "
                                  "Then, 20 divided by 4 makes 5. So the answer is 5.")
    assert parse_problem(P.prompt) == P and parse_problem(P.text) == P
    for spec in LEVELS.values():
        rng = random.Random(1)
        for _ in range(100):
            p = make_problem(rng, spec)
            assert parse_problem(p.prompt) == p
    with pytest.raises(ValueError, match="not an arith problem"):
        parse_problem("What is the capital of France?")
    with pytest.raises(ValueError, match="not a step"):
        parse_problem("Maya has 4 apples. She juggles 3 apples. How many apples does Maya have now?")


def test_generator_is_deterministic_per_seed_and_split():
    spec = LEVELS["L3"]
    assert draw_problems("test", 50, 0, spec) == draw_problems("test", 50, 0, spec)
    assert draw_problems("test", 50, 0, spec) != draw_problems("test", 50, 1, spec)
    assert draw_problems("test", 50, 0, spec) != draw_problems("val", 50, 0, spec)
    # a suite's first items do not depend on its size or on which other suites are built
    small = arith_suite("in_domain", 20, "L3")
    arith_suite("ood", 30, "L3")
    arith_prior_suite(200)
    assert arith_suite("in_domain", 80, "L3").prompts[:20] == small.prompts


@pytest.mark.parametrize("level", ["L1", "L3"])
def test_training_problems_share_no_story_with_any_held_out_split(level):
    train = {it.prompt for it in arith_items(level, n=1500, seed=0)} | {it.prompt for it in arith_items(level, 300, 7)}
    held_out = {part: set(arith_suite(part, 600, level).prompts) for part in ("in_domain", "val", "ood")}
    for part, prompts in held_out.items():
        assert not train & prompts, part
    assert not held_out["val"] & held_out["in_domain"]
    # the disjointness is not luck: at L1 the raw streams repeat stories between train and test
    if level == "L1":
        streams = {split: split_rng(0, split) for split in ("train", "test")}
        raw = {split: {make_problem(rng, LEVELS[level]).text for _ in range(3000)} for split, rng in streams.items()}
        assert raw["train"] & raw["test"]


def _check_level(p: Problem, spec: Level) -> None:
    assert spec.min_steps <= len(p.ops) <= spec.max_steps
    assert all(1 <= v <= spec.max_value for v in p.values()), p.values()
    for k, (op, n) in enumerate(p.ops):
        assert op in spec.ops
        if op in "+-":
            assert 1 <= n <= spec.max_operand
        else:  # a product only first, an exact share only last
            assert k == (0 if op == "*" else len(p.ops) - 1) and 2 <= n <= spec.max_factor
            assert op == "/" or 2 <= p.start <= spec.max_factor
    if p.ops[-1][0] == "/":
        assert p.values()[-2] % p.ops[-1][1] == 0


# the table of README "The arith world (real models)": steps, values up to, +/- operand up to, operations, factors
STATED = {"L0": ((1, 1), 10, 5, "+-", 10), "L1": ((1, 1), 20, 10, "+-", 10),
          "L2": ((2, 2), 50, 20, "+-", 10), "L3": ((2, 3), 100, 30, "+-*", 10),
          "L4": ((3, 4), 200, 50, "+-*/", 10), "L5": ((4, 6), 500, 100, "+-*/", 12)}


@pytest.mark.parametrize("name", list(LEVELS))
def test_levels_give_their_step_counts_value_ranges_and_operations(name):
    spec, (steps, max_value, max_operand, ops, max_factor) = LEVELS[name], STATED[name]
    assert (spec.min_steps, spec.max_steps, spec.max_value, spec.max_operand, "".join(spec.ops)) == (
        *steps, max_value, max_operand, ops) and (spec.max_factor == max_factor or ops == "+-")
    problems = draw_problems("test", 400, 0, spec)
    for p in problems:
        _check_level(p, spec)
    assert {len(p.ops) for p in problems} == set(range(steps[0], steps[1] + 1))
    assert {op for p in problems for op, _ in p.ops} == set(ops)
    assert max(max(p.values()) for p in problems) > max_value * 0.8  # the range is used, not just allowed
    ood = longer(spec, 2)
    for p in arith_suite("ood", 5, name).meta:
        assert spec.max_steps + 1 <= p["steps"] <= spec.max_steps + 2
    for p in draw_problems("ood", 100, 0, ood):
        _check_level(p, ood)


def test_levels_grow_in_difficulty_and_bad_specs_are_refused():
    specs = list(LEVELS.values())
    assert [s.max_steps for s in specs] == sorted(s.max_steps for s in specs)
    assert [s.max_value for s in specs] == sorted(s.max_value for s in specs) and specs[0].max_steps == 1
    label, spec = level_of({"min_steps": 1, "max_steps": 2, "max_value": 30, "max_operand": 9, "ops": ["+", "/"]})
    assert label == "custom" and spec.ops == ("+", "/")
    with pytest.raises(ConfigError, match="use one of L0, L1, L2, L3, L4, L5"):
        level_of("L9")
    with pytest.raises(ConfigError, match="unknown field 'steps'"):
        level_of({"steps": 3})
    with pytest.raises(ConfigError, match="ops"):
        Level(1, 2, 50, 10, ops=("%",))
    with pytest.raises(ConfigError, match="at most one"):
        Level(1, 3, 50, 10, ops=("*", "/"))
    with pytest.raises(ConfigError, match="extra_steps"):
        longer(LEVELS["L1"], 0)
    with pytest.raises(ConfigError, match="part"):
        arith_suite("prior", 5, "L1")


ADD = ("buys", "finds", "gets", "wins", "picks up", "is given")
SUB = ("gives away", "loses", "sells", "donates", "eats")


def recompute(prompt: str) -> int:
    """The answer from the story's words alone, written apart from spot.arith.tasks."""
    first, *middle, _question = prompt.split("\n\n")[0].split(". ")
    numbers = [int(x) for x in re.findall(r"\d+", first)]
    value = numbers[0] * numbers[1] if " in each " in first else numbers[0]
    for sentence in middle:
        (n,) = [int(x) for x in re.findall(r"\d+", sentence)]
        if "equally" in sentence:
            assert value % n == 0
            value //= n
        elif any(f" {v} " in sentence for v in ADD):
            value += n
        else:
            assert any(f" {v} " in sentence for v in SUB), sentence
            value -= n
    return value


@pytest.mark.parametrize("name", list(LEVELS))
def test_every_reference_answer_recomputed_from_the_words(name):
    for part in ("in_domain", "val", "ood"):
        suite = arith_suite(part, 150, name)
        assert [str(recompute(p)) for p in suite.prompts] == suite.answers
    assert [str(recompute(it.prompt)) for it in arith_items(name, 150)] == [it.answer for it in arith_items(name, 150)]


FREE_TEXT = [  # (a model's text, what the checker reads)
    ("12 + 5 = 17\n17 - 3 = 14\nAnswer: 14", "14"),
    ("Answer: 12 apples", "12"),
    ("Maya has 12 + 5 = 17 apples. Then 17 - 3 = 14.\nSo the answer is 14.", "14"),
    ("The answer is: 1,250.", "1250"),
    ("Answer: 14.", "14"),
    ("**Answer:** 14", "14"),
    ("We get \\boxed{14}.", "14"),
    ("Answer: 10\nWait, I made a mistake. 12 + 5 = 17, 17 - 3 = 14.\nAnswer: 14", "14"),  # the last one counts
    ("Answer: 14\nAnd the final number in my box is \\boxed{15}", "15"),
    ("Sure! Maya starts with 12 apples, buys 5 and gives 3 away, 14 left, I think. Have a nice day!", None),
    ("Answer: fourteen", None),
    ("Answer: 14.5", "14.5"),
    ("Answer: 14.0", "14"),
    ("answer = 14 (after 2 steps)", "14"),
    ("She answered 3 questions. 12 + 5 = 17", None),
]


@pytest.mark.parametrize("text, expected", FREE_TEXT)
def test_checker_reads_the_final_statement_of_free_text(text, expected):
    assert extract_answer(text) == expected
    verdict = ArithVerifier()(text, "14")
    assert verdict.correct == (expected == "14") and verdict.predicted == expected
    assert verdict.note == ("no answer" if expected is None else "")


def test_checker_needs_the_exact_integer():
    check = ArithVerifier()
    assert check("Answer: 1,400", "1400").correct and check("Answer: -3", "-3").correct
    assert not check("Answer: 140", "1400").correct and not check("Answer: 14", "-14").correct


def test_default_level_and_instruction_are_the_same_in_every_arith_config():
    problems = yaml.safe_load((CONF / "problems" / "arith.yaml").read_text())
    chosen = {"problems": (problems["level"], problems["instruction"]),
              "source": (problems["source"]["level"], problems["source"]["instruction"])}
    for name in ("arith_in_domain", "arith_val", "arith_ood"):
        text = (CONF / "eval" / f"{name}.yaml").read_text()
        chosen[name] = tuple(yaml.safe_load(text)[k] for k in ("level", "instruction"))
        assert "from the pilot" in text
    assert chosen.pop("source") == ("${problems.level}", "${problems.instruction}")
    assert set(chosen.values()) == {("L1", "plain")}  # the pilot's nearest to the band (README)


def test_the_instruction_variants_share_the_story_and_the_answer_line():
    from spot.arith.tasks import INSTRUCTIONS as STEP_INSTRUCTIONS
    from spot.arith.tasks import parse_problem

    assert P.prompt == P.prompt_with("example")
    plain = P.prompt_with("plain")
    assert plain.startswith(P.text + "\n\n") and "Answer:" in plain
    assert not any(ch.isdigit() for ch in STEP_INSTRUCTIONS["plain"])  # no example numbers to copy
    assert parse_problem(plain) == parse_problem(P.prompt)  # the Oracle reads either
    suite = arith_suite("val", 5, "L1", instruction="plain")
    example = arith_suite("val", 5, "L1", instruction="example").prompts
    assert suite.prompts == [p.replace(INSTRUCTION, STEP_INSTRUCTIONS["plain"]) for p in example]
    with pytest.raises(ConfigError, match="instruction='fancy'"):
        P.prompt_with("fancy")


def test_configs_build_the_suites_and_problems_a_run_uses():
    from hydra import compose, initialize_config_dir

    from spot.cli import build, build_suites

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        ev = compose(config_name="evaluate", overrides=["eval=[arith,arith_val]", "eval.suites.arith_ood.level=L4"])
        rect = compose(config_name="rectify", overrides=["problems=arith", "oracle=arith", "problems.level=L3"])
    suites = {s.name: s for s in build_suites(ev.eval)}
    assert {n: (s.group, len(s.prompts)) for n, s in suites.items()} == {
        "arith_in_domain": ("in_domain", 1000), "arith_ood": ("ood", 500), "arith_prior": ("prior", 240),
        "arith_val": ("val", 200)}
    assert {m["steps"] for m in suites["arith_ood"].meta} == {5, 6} and suites["arith_ood"].max_new_tokens == 384
    items = build(rect.problems.source, "problems.source")
    assert len(items) == 1000 and items[:3] == arith_items("L3", 3) and rect.out_dir == "data/arith"


def test_eval_arith_measures_the_kl_on_its_non_math_chat_prompts(monkeypatch):
    """eval=arith's KL to the base samples the 60 everyday chat prompts, not its math suites (evaluate.py's job,
    spot.evaluate_run); a kl_prompts that gives no prompts is named by its key before a model loads."""
    from hydra import compose, initialize_config_dir

    from spot import evaluate_run as entry
    from spot.errors import ConfigError

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        arith = compose(config_name="evaluate", overrides=["model=smollm2", "eval=[arith,arith_val]"])
        toy = compose(config_name="evaluate")
        empty = compose(config_name="evaluate", overrides=["eval.kl_prompts={_target_:builtins.list}"])
    assert entry.kl_prompts_of(arith.eval) == tuple(kl_prompts()) and len(kl_prompts()) == 60
    assert entry.kl_prompts_of(toy.eval) is None  # the suites' own prompts, as before
    with pytest.raises(ConfigError, match="eval.kl_prompts: must give a non-empty list"):
        entry.kl_prompts_of(empty.eval)


# ----------------------------------------------------------------------------- prior probes

def test_prior_items_are_seeded_ifeval_rows_with_registered_checks():
    registry = pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry").INSTRUCTION_DICT
    rows = prior_items(240)
    assert rows == prior_items(240) and rows != prior_items(240, seed=1) and prior_items(100) == rows[:100]
    assert len({r["prompt"] for r in rows}) == 240 and len(REQUESTS) * len(INSTRUCTIONS) >= 300
    assert {i for r in rows for i in r["instruction_id_list"]} <= set(registry)
    assert "length_constraints:number_sentences" not in {i for i, _, _ in INSTRUCTIONS}  # needs NLTK data
    with pytest.raises(ConfigError, match="arith prior n=999"):
        prior_items(999)


# instruction id (and kwargs) -> (a reply that follows it, one that does not), for "Describe a cat."
REPLIES = {
    "change_case:english_capital": ("A CAT IS A SMALL FURRY ANIMAL THAT LIKES TO SLEEP.",
                                    "A cat is a small furry animal that likes to sleep."),
    "change_case:english_lowercase": ("a cat is a small furry animal that likes to sleep.",
                                      "A cat is a small furry animal that likes to sleep."),
    "punctuation:no_comma": ("A cat is soft and small and it likes naps.", "A cat is soft, small, and sleepy."),
    "startend:end_checker": ("Cats are soft and calm. That is all.", "That is all. Cats are soft and calm."),
    "length_constraints:number_words/less than": ("Cats are small, soft and curious.", " ".join(["cat"] * 25)),
    "length_constraints:number_words/at least": (" ".join(["cat"] * 55), "Cats are small."),
    "detectable_format:number_bullet_lists": ("* soft fur\n* long tail\n* sharp claws", "* soft fur\n* long tail"),
    "detectable_format:title": ("<<All About Cats>>\nCats purr.", "All About Cats\nCats purr."),
    "startend:quotation": ('"Cats purr when they are happy."', "Cats purr when they are happy."),
    "keywords:existence": ("My cat is happy in the sun.", "My cat sleeps in the sun."),
    "detectable_content:postscript": ("Cats purr.\nP.S. I love cats.", "Cats purr. I love cats."),
    "detectable_format:number_highlighted_sections": ("Cats have *soft fur* and *long tails*.",
                                                      "Cats have *soft fur* and long tails."),
}


@pytest.mark.parametrize("iid, kwargs, text", INSTRUCTIONS, ids=[f"{i}/{k.get('relation', '')}"
                                                                 for i, k, _ in INSTRUCTIONS])
def test_prior_items_score_compliant_replies_right_and_others_wrong(iid, kwargs, text):
    pytest.importorskip("lm_eval.tasks.ifeval.utils", reason="lm-eval[ifeval] not installed")
    suite = arith_prior_suite(360)
    (row,) = [r for r in suite.answers if r["prompt"] == f"Describe a cat. {text}"]
    good, bad = REPLIES[f"{iid}/{kwargs['relation']}" if "relation" in kwargs else iid]
    assert suite.score(good, row).correct
    verdict = suite.score(bad, row)
    assert not verdict.correct and verdict.predicted == f"{iid}=0"
    assert suite.template == "{prompt}" and suite.group == "prior"


def test_kl_prompts_are_held_out_everyday_chat():
    prompts = kl_prompts()
    assert len(prompts) >= 50 and len(set(prompts)) == len(prompts)
    assert not set(prompts) & set(REQUESTS) and not any(re.search(r"\d", p) for p in prompts)
    assert not {p for p in prompts for r in prior_items(360) if r["prompt"].startswith(p)}
