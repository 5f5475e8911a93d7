"""The toy path end to end through the real entry point, plus the pieces it stands on (LCS, journal)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from spot.rectify.journal import Journal, JournalError
from spot.rectify.lcs import edit_ratio, lcs_length
from spot.rows import write_jsonl

ROOT = Path(__file__).resolve().parents[1]


def lcs_dp(a, b) -> int:
    """The textbook O(|a||b|) table, as the reference for the bit-parallel version."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev = 0
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], prev + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def test_lcs_matches_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.randrange(5) for _ in range(rng.randrange(0, 90))]
        b = [rng.randrange(5) for _ in range(rng.randrange(0, 90))]
        assert lcs_length(a, b) == lcs_dp(a, b)


def test_edit_ratio_limits():
    y = [1, 2, 3, 4]
    assert edit_ratio(y, y) == 0.0  # nothing rewritten
    assert edit_ratio([9, 9], y) == 1.0  # nothing shared
    assert edit_ratio([1, 2, 7, 8], y) == 0.5  # half of y+ is new
    assert edit_ratio(y, []) == 1.0


def test_journal_drops_torn_tail_and_appends_cleanly(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path)
    j.append({"key": "a"})
    j.append({"key": "b"})
    j.close()
    with path.open("a") as f:
        f.write('{"key": "c", "te')  # kill -9 in the middle of a write
    j = Journal(path)
    assert [r["key"] for r in j.records] == ["a", "b"]
    j.append({"key": "c"})
    j.close()
    assert [r["key"] for r in Journal(path).records] == ["a", "b", "c"]


def test_journal_refuses_damage_before_the_tail(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(JournalError, match=r"j.jsonl:2"):
        Journal(path)


def run_rectify(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "rectify.py", "progress=false", "hydra.run.dir=${out_dir}/hydra", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_toy_end_to_end_and_rerun(micro_model_dir, tmp_path):
    from spot.data import read_examples
    from spot.toy.suites import toy_test_problems

    out = tmp_path / "toy"
    args = (f"model.path={micro_model_dir}", f"out_dir={out}", "problems.source.n=48", "chunk_size=16",
            "sampling.max_new_tokens=40")
    done = run_rectify(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    c = report["counts"]
    pairs, rft, direct = (read_jsonl(out / f) for f in ("pairs.jsonl", "rft.jsonl", "direct.jsonl"))
    drops = read_jsonl(out / "drops.jsonl")
    assert c["samples"] == 48 and c["sampled_this_run"] == 48 and c["correct"] + c["wrong"] == 48
    assert len(rft) == c["correct"] and len(pairs) == c["pairs"] > 0 and len(direct) == 48
    assert len(pairs) + sum(d["stage"] == "rectify" for d in drops) == c["wrong"]  # every wrong one accounted
    assert sum(report["drops"]["rectify"].values()) == c["wrong"] - c["pairs"]
    test_prompts = {p.text for p in toy_test_problems(1000, 0)}
    for row in pairs:
        assert set(row) >= {"prompt", "chosen", "rejected", "id", "answer", "r_lcs"}
        assert row["r_lcs"] <= 0.6 and row["chosen"].endswith(f"#### {row['answer']}")
        assert not row["prompt"].startswith("Q:") and row["prompt"] not in test_prompts
    assert len(read_examples(str(out / "pairs.jsonl"), pairs=True)) == len(pairs)  # train.py reads it
    assert len(read_examples(str(out / "direct.jsonl"), pairs=False)) == 48

    before = {f: (out / f).read_bytes() for f in ("pairs.jsonl", "rft.jsonl", "direct.jsonl", "drops.jsonl")}
    again = run_rectify(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    c2 = json.loads((out / "report.json").read_text())["counts"]
    assert c2["sampled_this_run"] == 0 and c2["oracle_calls_this_run"] == 0  # all journaled
    assert {f: (out / f).read_bytes() for f in before} == before


def test_journals_of_other_settings_are_refused(tmp_path):
    from spot.rectify.pipeline import RectifyError, check_manifest

    manifest = tmp_path / "manifest.json"
    check_manifest(manifest, {"samples": {"model": "m", "sampling": {"temperature": 0.7}}})
    check_manifest(manifest, {"samples": {"model": "m", "sampling": {"temperature": 0.7}}})  # same: resumes
    with pytest.raises(RectifyError, match=r"samples.jsonl was made with other settings \(changed: "
                                           r"sampling.temperature\)"):
        check_manifest(manifest, {"samples": {"model": "m", "sampling": {"temperature": 0.5}}})


def test_a_bad_problem_file_is_one_line_naming_file_line_field(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "Q", "answer": "#### 1"}\n{"question": "Q2"}\n')
    done = run_rectify(f"out_dir={tmp_path / 'out'}", "problems=jsonl", f"problems.source.path={bad}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {bad}:2: missing field 'answer'"


@pytest.mark.parametrize("override, message", [("gamma=1.5", "error: gamma: must be in [0, 1]"),
                                               ("sampling.top_p=0", "error: sampling.top_p: must be in (0, 1]")])
def test_settings_out_of_range_are_one_line_naming_the_key(tmp_path, override, message):
    done = run_rectify(f"out_dir={tmp_path / 'out'}", override)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(message)
    assert not (tmp_path / "out" / "journal").exists()  # refused before anything was sampled or journaled


def test_written_jsonl_is_whole(tmp_path):
    write_jsonl(tmp_path / "x.jsonl", [{"a": 1}, {"a": 2}])
    assert read_jsonl(tmp_path / "x.jsonl") == [{"a": 1}, {"a": 2}]
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_sampling_resumes_chunk_by_chunk(tmp_path):
    """A crash after two chunks: the rerun samples only the rest, and every chunk has its own seed, so the
    result equals an uninterrupted run's."""
    from spot.rectify.problems import Item
    from spot.rectify.sampling import sample_stage

    items = [Item(id=f"p{i}", prompt=f"problem {i}", answer="0") for i in range(10)]
    calls = []

    def sampler(prompts, seed):
        calls.append(len(prompts))
        if len(calls) == 3 and crash:
            raise KeyboardInterrupt  # the process dies while sampling the third chunk
        return [f"{p} / seed {seed}" for p in prompts]

    crash = True
    with pytest.raises(KeyboardInterrupt):
        sample_stage(items, sampler, Journal(tmp_path / "a.jsonl"), chunk_size=4, seed=1, progress=False)
    crash, calls[:] = False, []
    resumed, n = sample_stage(items, sampler, Journal(tmp_path / "a.jsonl"), 4, 1, progress=False)
    assert calls == [2] and n == 2  # only the last chunk (2 prompts) was sampled again
    whole, _ = sample_stage(items, sampler, Journal(tmp_path / "b.jsonl"), 4, 1, progress=False)
    assert resumed == whole


def test_a_long_chunk_shows_progress_while_it_is_generated(tmp_path, monkeypatch, capsys):
    """A chunk of a real model's answers takes minutes on a CPU: lines come while it is generated (off a
    terminal, one when due), not only when it ends."""
    import time

    from spot.rectify.problems import Item
    from spot.rectify.sampling import sample_stage

    monkeypatch.setenv("SPOT_PROGRESS_EVERY_S", "0.2")
    items = [Item(id=f"p{i}", prompt=f"problem {i}", answer="0") for i in range(6)]
    seen = []

    def sampler(prompts, seed):
        time.sleep(1.5)
        seen.append(capsys.readouterr().err)  # what was printed while this chunk was still being generated
        return ["x"] * len(prompts)

    sample_stage(items, sampler, Journal(tmp_path / "a.jsonl"), chunk_size=4, seed=1)
    assert "[sample] 0/6 prompts (0%)  chunk 1/2 generating" in seen[0]
    assert "[sample] 4/6 prompts (67%)  chunk 2/2 generating" in seen[1]


@pytest.mark.parametrize("overrides", [
    [], ["problems=gsm8k", "oracle=anthropic", "model=hf", "model.path=Qwen/Qwen3-8B"],
    ["problems=gsm8k_solutions", "oracle=fake"], ["problems=dapo", "oracle=openai", "oracle.backend.model=m"],
    ["problems=jsonl", "problems.source.path=x.jsonl"],
])
def test_every_rectify_config_composes(overrides):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("rectify", overrides=overrides)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["sampling"]["max_new_tokens"] == resolved["problems"]["max_new_tokens"]
    assert "api_key" not in json.dumps(resolved).replace("api_key_env", "")  # the key is never config
    assert resolved["oracle"]["backend"].get("max_in_flight", 64) == resolved["oracle"]["max_in_flight"]


def test_another_gamma_reuses_the_journals(tmp_path):
    """gamma=1.0 into another out_dir with the first run's journals: nothing is sampled or asked again."""
    from spot.rectify.config import RectifyConfig
    from spot.rectify.pipeline import run
    from spot.toy.oracle import ToyOracle
    from spot.toy.problems import toy_items
    from spot.toy.suites import ToyVerifier

    items = toy_items(n=40)
    sampler = lambda prompts, seed: ["1+1=3\n#### 3"] * len(prompts)  # noqa: E731 - all wrong, all small edits
    tokenize = lambda text: [ord(c) for c in text]  # noqa: E731
    first = run(items, sampler, tokenize, ToyVerifier(), ToyOracle(),
                RectifyConfig(out_dir=str(tmp_path / "a"), progress=False), {})
    again = run(items, lambda *a: pytest.fail("sampled again"), tokenize, ToyVerifier(), ToyOracle(),
                RectifyConfig(out_dir=str(tmp_path / "b"), gamma=1.0, journal_dir=str(tmp_path / "a/journal"),
                              progress=False), {})
    assert again["counts"]["oracle_calls_this_run"] == 0 and again["counts"]["sampled_this_run"] == 0
    assert again["counts"]["pairs"] == again["counts"]["wrong"] > first["counts"]["pairs"]  # none too large
    assert not (tmp_path / "b" / "journal").exists()


def test_a_run_that_keeps_no_pair_warns_and_exits_3_unless_allowed(micro_model_dir, tmp_path):
    """gamma=0 keeps only pairs whose y+ is all in y-: none. A data set of nothing is not a success."""
    args = (f"model.path={micro_model_dir}", "problems.source.n=16", "chunk_size=16", "sampling.max_new_tokens=40",
            "gamma=0")
    done = run_rectify(*args, f"out_dir={tmp_path / 'a'}")
    assert done.returncode == 3, done.stderr[-2000:]
    said = done.stdout + done.stderr
    assert "0 pairs kept of" in said and "allow_empty=true" in said
    assert json.loads((tmp_path / "a" / "report.json").read_text())["counts"]["pairs"] == 0
    allowed = run_rectify(*args, f"out_dir={tmp_path / 'b'}", "allow_empty=true")
    assert allowed.returncode == 0, allowed.stderr[-2000:]



def test_outputs_are_replaced_as_a_set_with_a_marker(micro_model_dir, tmp_path):
    """A rerun with direct=false leaves no direct.jsonl of the earlier run; temp files a killed writer left are
    removed; COMPLETE, written last, lists the set."""
    out = tmp_path / "toy"
    args = (f"model.path={micro_model_dir}", f"out_dir={out}", "problems.source.n=16", "chunk_size=16",
            "sampling.max_new_tokens=40")
    assert run_rectify(*args).returncode == 0
    assert json.loads((out / "COMPLETE").read_text()) == sorted(["pairs.jsonl", "rft.jsonl", "drops.jsonl",
                                                                 "direct.jsonl", "report.json"])
    (out / ".pairs.jsonl.tmp-999999").write_text("half a file")  # what a kill during the write leaves
    done = run_rectify(*args, "direct=false")
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (out / "direct.jsonl").exists() and not list(out.glob(".*.tmp-*"))
    assert json.loads((out / "COMPLETE").read_text()) == sorted(["pairs.jsonl", "rft.jsonl", "drops.jsonl",
                                                                 "report.json"])
    assert json.loads((out / "report.json").read_text())["counts"]["direct"] == 0
