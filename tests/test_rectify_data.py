"""Problem files (one-line errors naming file:line:field) and answer checking, on real GSM8K solutions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from spot.answers import MathVerifier, extract_final
from spot.errors import DataError
from spot.rectify.problems import file_items
from spot.toy.problems import toy_items
from spot.toy.suites import ToyVerifier

SOLUTIONS = Path(__file__).resolve().parents[1] / "assets/gsm8k/example_model_solutions.jsonl"
MODELS = ("6b_finetuning", "6b_verification", "175b_finetuning", "175b_verification")


def write(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_gsm8k_and_dapo_shapes(tmp_path):
    gsm = write(tmp_path / "g.jsonl", [{"question": "Q1", "answer": "3 + 4 = <<3+4=7>>7\n#### 1,007"}])
    assert file_items(gsm)[0].answer == "1007"
    chat = [{"role": "user", "content": "Q2"}]
    dapo = write(tmp_path / "d.jsonl", [{"prompt": chat, "solution": "\\frac{1}{2}"}])
    item = file_items(dapo, prompt_key="prompt", answer_key="solution")[0]
    assert (item.prompt, item.answer) == ("Q2", "\\frac{1}{2}")


@pytest.mark.parametrize("rows, message", [
    ([{"question": "Q", "answer": "#### 1"}, "{not json"], r"p.jsonl:2: not valid JSON"),
    ([{"question": "Q", "answer": "#### 1"}, {"answer": "#### 2"}], r"p.jsonl:2: missing field 'question'"),
    ([{"question": "  ", "answer": "#### 2"}], r"p.jsonl:1: field 'question' is empty"),
    ([{"question": "Q", "answer": ["x"]}], r"p.jsonl:1: field 'answer' must be a string"),
    ([{"question": "Q", "answer": "steps\n####"}], r"p.jsonl:1: field 'answer' has '####' but no answer"),
    ([[1, 2]], r"p.jsonl:1: expected a JSON object"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        file_items(write(tmp_path / "p.jsonl", rows))


def test_parquet_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"prompt": ["A", "B"], "solution": ["1", "2"]}), tmp_path / "p.parquet")
    items = file_items(str(tmp_path / "p.parquet"), prompt_key="prompt", answer_key="solution")
    assert [(i.prompt, i.answer) for i in items] == [("A", "1"), ("B", "2")]
    pq.write_table(pa.table({"prompt": ["A"]}), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad.parquet:row 1: missing field 'solution'"):
        file_items(str(tmp_path / "bad.parquet"), prompt_key="prompt", answer_key="solution")


def test_toy_problems_exclude_the_test_set():
    from spot.toy.suites import toy_test_problems

    items = toy_items(n=500, seed=0)
    assert len(items) == 500 and not {i.prompt for i in items} & {p.text for p in toy_test_problems(1000, 0)}
    assert ToyVerifier()("3+4=7\n#### 7", "7").correct and not ToyVerifier()("#### 8", "7").correct


@pytest.mark.parametrize("text, answer", [
    ("so $\\boxed{18}$. A: 17", "18"),  # boxed first
    ("She makes 9 * 2 = $18\n#### 18", "18"),
    ("She makes $18 a day.\nA: 18", "18"),
    ("Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$.", "0.5"),
    ("A: $1,000.00", "1000"),
])
def test_math_verifier_accepts(text, answer):
    assert MathVerifier()(text, answer).correct


def test_math_verifier_rejects_and_is_time_bounded():
    v = MathVerifier(timeout_s=1)
    assert not v("A: 26", "18").correct and v("no answer here", "18").predicted is None
    assert extract_final("\\boxed{x") is None  # an unclosed box is not an answer
    t = time.time()
    for evil in ("\\boxed{9^{9^{9^{9^{9}}}}}", "\\boxed{" + "(" * 5000 + "}", "A: " + "1+" * 100_000 + "1"):
        assert not v(evil, "3").correct
    assert time.time() - t < 10


def test_verifier_agrees_with_gsm8k_is_correct_flags():
    """The dataset's own labels on 800 real model solutions (the slice): how often math-verify agrees with them."""
    v, agree, total, wrong = MathVerifier(), 0, 0, 0
    for line in SOLUTIONS.read_text().splitlines():
        row = json.loads(line)
        answer = extract_final(row["ground_truth"])
        for key in MODELS:
            flag = row[key]["is_correct"]
            agree += v(row[key]["solution"], answer).correct == flag
            total += 1
            wrong += not flag
    print(f"math-verify agrees with is_correct on {agree}/{total} = {agree / total:.4f}")
    assert (total, wrong) == (800, 505)
    assert agree / total >= 0.99


def test_saved_datasets_directory(tmp_path):
    import datasets

    datasets.Dataset.from_dict({"question": ["A", "B"], "answer": ["#### 1", "#### 2"]}).save_to_disk(tmp_path / "ds")
    assert [i.answer for i in file_items(str(tmp_path / "ds"))] == ["1", "2"]


def test_math_verifier_gives_the_main_threads_verdicts_in_a_thread_pool():
    """math-verify's timeout is a SIGALRM timer, main thread only: in a worker thread its check failed, and these
    correct answers came out "unparseable". Off the main thread MathVerifier checks in a worker process."""
    from concurrent.futures import ThreadPoolExecutor

    from spot.answers import MathVerifier, _equivalent

    cases = [("\\boxed{\\frac{36}{2}}", "18"), ("so the answer is \\boxed{18.0}", "18"), ("\\boxed{17}", "18"),
             ("\\boxed{\\sqrt{4}}", "2"), ("\\boxed{\\frac{1}{2}}", "0.5"), ("no final answer here", "3")]
    verifier = MathVerifier()
    on_main = [verifier(c, a) for c, a in cases]
    assert [v.correct for v in on_main] == [True, True, False, True, True, False]
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(lambda ca: verifier(*ca), cases)) == on_main
        # the check itself, called off the main thread, is what fails: the reason for the worker process
        assert pool.submit(_equivalent, 3, "\\frac{36}{2}", "18").result() == (False, "unparseable")
