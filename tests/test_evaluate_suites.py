"""Benchmark suites and scoring without a model: row shapes, bad input, shuffled choices, avg@N, hostile output.

Generation is replaced by a fake that returns chosen completions, so these tests pin down reading and scoring.
"""

import json
import time
from pathlib import Path

import pytest

from spot.answers import MathVerifier, exact_match
from spot.chat import ChatFormat
from spot.errors import ConfigError, DataError
from spot.evaluate import scoring as runner
from spot.evaluate.scorers import ChoiceScorer, extract_choice
from spot.evaluate.scoring import score_suite
from spot.evaluate.suite_files import adjust, choice_suite, file_suite, ifeval_suite
from spot.evaluate.suites import Suite
from spot.generation import Sampling
from spot.toy.suites import toy_suite

GSM8K_TEST = Path(__file__).resolve().parents[1] / "assets" / "gsm8k" / "test.jsonl"


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def fake_generate(monkeypatch):
    """Replaces generation: completions come from `answers[prompt]`, cycling through a list per prompt."""
    calls = []

    def install(answers: dict[str, list[str]]):
        def generate(model, chat, prompts, sampling, seed=0, progress=True, desc="", template=None, **engine_args):
            calls.append((list(prompts), sampling))
            seen: dict[str, int] = {}
            out = []
            for p in prompts:
                k = seen[p] = seen.get(p, -1) + 1
                out.append(answers[p][k % len(answers[p])])
            return out

        monkeypatch.setattr(runner, "generate", generate)
        return calls

    return install


MATH_SHAPES = [  # (row, expected reference answer): the paper's sets in their common jsonl shapes
    ({"problem": "MATH-500", "solution": "... \\boxed{\\frac{1}{2}}", "answer": "\\frac{1}{2}"}, "\\frac{1}{2}"),
    ({"ID": "2024-I-1", "Problem": "AIME 2024", "Solution": "...", "Answer": 204}, "204"),
    ({"question": "AMC23", "answer": 27.0}, "27"),
    ({"problem": "Minerva", "solution": "so $x = \\boxed{7.5 \\times 10^{3}}$."}, "7.5 \\times 10^{3}"),
    ({"question": "OlympiadBench", "final_answer": ["$\\sqrt{2}$"]}, "\\sqrt{2}"),
    ({"question": "GSM8K", "answer": "3 + 4 = 7\n#### 1,007"}, "1007"),
]


def test_math_sets_are_read_in_their_common_shapes(tmp_path):
    path = write_jsonl(tmp_path / "mixed.jsonl", [row for row, _ in MATH_SHAPES])
    suite = file_suite("mixed", str(path), MathVerifier(), template="{prompt}\nPut it in \\boxed{}.")
    assert suite.answers == [answer for _, answer in MATH_SHAPES]
    assert suite.prompts[0] == "MATH-500"  # the raw problem; the chat format applies the suite's template
    chat = ChatFormat(tokenizer=None)  # no tokenizer needed to place the problem in a template
    assert chat.problem_text(suite.prompts[0], suite.template) == "MATH-500\nPut it in \\boxed{}."  # {} kept
    assert chat.problem_text(suite.prompts[0]) == "MATH-500"  # a suite without a template: the model's
    assert suite.meta[1]["source"] == f"{path}:2"


def test_gsm8k_test_file_from_the_repositorys_slice():
    suite = file_suite("gsm8k", str(GSM8K_TEST), MathVerifier(), prompt_key="question", answer_key="answer",
                       limit=3)
    assert suite.answers == ["18", "3", "70000"] and suite.prompts[0].startswith("Janet")


def test_missing_benchmark_file_names_suite_and_path(tmp_path):
    with pytest.raises(DataError, match=r"eval.suites.aime24.path=.*nowhere/aime24.jsonl does not exist"):
        file_suite("aime24", str(tmp_path / "nowhere" / "aime24.jsonl"), MathVerifier())


def test_row_without_answer_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "math.jsonl", [{"problem": "a", "answer": "1"}, {"problem": "b"}])
    with pytest.raises(DataError, match=rf"{path}:2: no answer \(looked for field 'answer' or"):
        file_suite("math", str(path), MathVerifier())
    path = write_jsonl(tmp_path / "minerva.jsonl", [{"problem": "a", "solution": "no box here"}])
    with pytest.raises(DataError, match=rf"{path}:1: field 'solution' has no \\boxed"):
        file_suite("minerva", str(path), MathVerifier())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "a", "answer": "1"}\nnot json\n')
    with pytest.raises(DataError, match=rf"{bad}:2: not valid JSON"):
        file_suite("x", str(bad), MathVerifier())


GPQA_ROWS = [{"Question": f"Q{i}?", "Correct Answer": f"right{i}", "Incorrect Answer 1": f"w{i}a",
              "Incorrect Answer 2": f"w{i}b", "Incorrect Answer 3": f"w{i}c"} for i in range(12)]


def test_choices_are_shuffled_with_a_seeded_gold_letter(tmp_path):
    path = write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)
    suite = choice_suite("gpqa", str(path), seed=0)
    for prompt, letter, meta, row in zip(suite.prompts, suite.answers, suite.meta, GPQA_ROWS):
        assert f"{letter}) {row['Correct Answer']}\n" in prompt + "\n"  # the gold letter labels the right option
        assert meta["gold_index"] == "ABCD".index(letter)
    assert len(set(suite.answers)) > 1, "12 shuffles all put the answer at the same letter"
    again = choice_suite("gpqa", str(path), seed=0, limit=5)
    assert again.answers == suite.answers[:5]  # each row's shuffle is its own: limit changes nothing
    assert choice_suite("gpqa", str(path), seed=1).answers != suite.answers


def test_choice_rows_with_a_choices_list(tmp_path):
    path = write_jsonl(tmp_path / "mc.jsonl", [{"question": "2+2?", "choices": ["3", "4", "5"], "answer": "B"}])
    suite = choice_suite("mc", str(path))
    letter = suite.answers[0]
    assert f"{letter}) 4" in suite.prompts[0]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "2+2?", "choices": ["3", "4"], "answer": 7}])
    with pytest.raises(DataError, match=rf"{bad}:1: field 'answer' must be a letter or an index"):
        choice_suite("mc", str(bad))


@pytest.mark.parametrize("text, letter", [
    ("so the answer is \\boxed{C}", "C"), ("\\boxed{(B)}", "B"), ("\\boxed{\\text{D}}", "D"),
    ("Answer: A", "A"), ("I think the answer is (d).", "D"), ("no idea", None), ("\\boxed{42}", None),
])
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_avg_at_n_is_the_mean_over_every_sample(fake_generate):
    calls = fake_generate({"p1": ["\\boxed{1}", "\\boxed{2}", "\\boxed{1}", "x"], "p2": ["\\boxed{5}"]})
    suite = Suite("s", "in_domain", ["p1", "p2"], ["1", "5"], MathVerifier(), max_new_tokens=7, n_samples=4)
    result = score_suite(None, None, suite, Sampling(temperature=0.7, top_p=0.8, top_k=20), progress=False)
    assert result.accuracy == pytest.approx((2 + 4) / 8) and result.metric == "avg@4"
    prompts, sampling = calls[0]
    assert prompts == ["p1"] * 4 + ["p2"] * 4 and sampling.max_new_tokens == 7 and sampling.top_k == 20
    assert [r["sample"] for r in result.records[:4]] == [0, 1, 2, 3]
    assert [r["correct"] for r in result.records[:4]] == [True, False, True, False]
    assert result.records[3]["note"] == "no answer"
    greedy = score_suite(None, None, suite, Sampling(temperature=0.0), progress=False)
    assert greedy.n_samples == 1 and len(greedy.records) == 2  # N greedy samples would all be the same


HOSTILE = [
    "\\boxed{9^{9^{9^{9}}}}",
    "\\boxed{10^{10^{10}}}",
    "\\boxed{(10^{10})!}",
    "\\boxed{" + "{" * 20000 + "1" + "}" * 20000 + "}",
    "\\boxed{" + "\\frac{1}{" * 40 + "2" + "}" * 40 + "}",
    "\\boxed{__import__('os').system('touch PWNED')}",
    "#### exec(open('x').read())",
    "\\boxed{" * 5000,
]


def test_hostile_outputs_are_wrong_in_bounded_time_and_never_run(tmp_path, monkeypatch, fake_generate):
    monkeypatch.chdir(tmp_path)
    fake_generate({"q": HOSTILE})
    suite = Suite("h", "in_domain", ["q"], ["18"], MathVerifier(timeout_s=1), n_samples=len(HOSTILE))
    t0 = time.time()
    result = score_suite(None, None, suite, Sampling(temperature=1.0), progress=False)
    # each answer costs at most a parse of the reference and of the answer plus one comparison, 1 s each
    assert time.time() - t0 < 3 * len(HOSTILE) + 5
    assert result.accuracy == 0.0 and not (tmp_path / "PWNED").exists()
    choice = ChoiceScorer()
    t0 = time.time()
    assert not choice("\\boxed{" + "{" * 200000 + "A", "A").correct and time.time() - t0 < 2


def test_toy_parts_and_command_line_adjustments():
    prior = toy_suite("prior", n=3, n_samples=2)
    assert [s.name for s in prior] == ["toy_prior_fact", "toy_prior_next", "toy_prior_first"]
    assert all(s.group == "prior" and len(s.prompts) == 3 and s.n_samples == 2 for s in prior)
    (ind,) = adjust(toy_suite("in_domain", n=10), limit=4, n_samples=3, max_new_tokens=9)
    assert len(ind.prompts) == len(ind.answers) == 4 and ind.n_samples == 3 and ind.max_new_tokens == 9
    with pytest.raises(ConfigError, match="toy_ood is selected twice"):
        adjust(toy_suite("ood", n=2) + toy_suite("ood", n=2))


def test_toy_validation_split_is_its_own_stream():
    from spot.toy.problems import toy_items
    from spot.toy.suites import toy_suites

    suites = {s.name: s for s in toy_suites(n_in_domain=300, n_ood=0, n_prior=0, n_val=200)}
    val, test = suites["toy_val_in_domain"], suites["toy_in_domain"]
    assert val.group == "val" and len(val.prompts) == 200
    train = {item.prompt for item in toy_items(n=2000, n_test=300)}
    assert not set(val.prompts) & set(test.prompts) and not set(val.prompts) & train
    assert "toy_val_in_domain" not in {s.name for s in toy_suites(n_in_domain=5, n_ood=0, n_prior=0)}


IFEVAL_ROWS = [
    {"key": 1, "prompt": "Write without commas about cats.", "instruction_id_list": ["punctuation:no_comma"],
     "kwargs": [{}]},
    {"key": 2, "prompt": "Answer in two bullets, then end with 'Any other questions?'.",
     "instruction_id_list": ["detectable_format:number_bullet_lists", "startend:end_checker"],
     "kwargs": [{"num_bullets": 2, "relation": None}, {"end_phrase": "Any other questions?"}]},
]


def test_ifeval_uses_lm_eval_checks(tmp_path):
    pytest.importorskip("lm_eval.tasks.ifeval.utils", reason="lm-eval[ifeval] not installed")
    suite = ifeval_suite("ifeval", str(write_jsonl(tmp_path / "ifeval.jsonl", IFEVAL_ROWS)))
    score = suite.score
    assert score("Cats are soft and they purr.", suite.answers[0]).correct
    assert not score("Cats, dogs.", suite.answers[0]).correct
    good = "* cats purr\n* dogs bark\nAny other questions?"
    assert score(good, suite.answers[1]).correct
    verdict = score(good.replace("* dogs", "dogs"), suite.answers[1])
    assert not verdict.correct and verdict.predicted == "detectable_format:number_bullet_lists=0,startend:end_checker=1"
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "instruction_id_list": ["no:such"], "kwargs": [{}]}])
    with pytest.raises(DataError, match=rf"{bad}:1: unknown instructions \['no:such'\]"):
        ifeval_suite("ifeval", str(bad))


def test_completions_that_cover_only_the_first_problems_name_eval_limit():
    from dataclasses import replace

    from spot.evaluate.scoring import score_completions

    suite = Suite("s", "in_domain", ["1+1?", "2+2?", "3+3?"], ["2", "4", "6"], lambda c, a: exact_match(c, a))
    rows = [("f.jsonl:1", {"prompt": "1+1?", "completion": "2"}), ("f.jsonl:2", {"prompt": "2+2?", "completion": "5"})]
    with pytest.raises(DataError, match=r"^suite s: no completion for its problem 3 of 3, '3\+3\?': a file that "
                                        r"covers only the first N problems is scored with eval.limit=N$"):
        score_completions(rows, [suite])
    first_two = replace(suite, prompts=suite.prompts[:2], answers=suite.answers[:2])  # what eval.limit=2 scores
    assert score_completions(rows, [first_two]).as_dict()["suites"] == {"s": 0.5}
