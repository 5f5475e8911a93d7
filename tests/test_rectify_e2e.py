"""The real entry point against the fake Claude: GSM8K model solutions end to end, and a run with 20% faults
killed with SIGKILL in the middle of the Oracle stage, then rerun: nothing lost, duplicated or paid twice, and
the same files as an uninterrupted run. The API key must appear in no file and no log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spot.rectify.oracles.fake_server import FakeServer, FakeSettings

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "assets" / "gsm8k" / "example_model_solutions.jsonl"   # 200 problems, 800 solutions
KEY = "sk-ant-api03-TEST-SECRET-do-not-leak-7f3a9c"
OUTPUTS = ("pairs.jsonl", "rft.jsonl", "direct.jsonl", "drops.jsonl")

pytestmark = pytest.mark.slow


def command(out: Path, url: str, model: str, *overrides: str) -> list[str]:
    return [sys.executable, "rectify.py", "progress=false", f"out_dir={out}",
            "hydra.run.dir=${out_dir}/hydra", f"model.path={model}", "oracle=fake",
            f"oracle.backend.base_url={url}", *overrides]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert KEY not in done.stdout + done.stderr
    return done


def assert_key_nowhere(root: Path) -> None:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "config.yaml" for p in files)  # Hydra's config dump is among what was searched
    for p in files:
        assert KEY.encode() not in p.read_bytes(), f"API key written to {p}"


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gsm8k_solutions_through_fake_claude(micro_model_dir, tmp_path):
    from spot.data import read_examples

    out = tmp_path / "gsm8k"
    with FakeServer(FakeSettings(api_key=KEY)).start() as srv:
        run(command(out, srv.url, micro_model_dir, "problems=gsm8k_solutions", "problems.source.limit=150",
                    "with_reference=true"))
    report = json.loads((out / "report.json").read_text())
    c = report["counts"]
    assert c["samples"] == 600 and c["sampled_this_run"] == 0  # completions came with the problems
    assert c["wrong"] > 300 and c["pairs"] > 0.9 * c["wrong"] and c["direct"] == 150
    for row in read(out / "pairs.jsonl"):
        assert row["chosen"].endswith(f"$\\boxed{{{row['answer']}}}$.") and row["r_lcs"] <= 0.6
        assert row["rejected"].split("\n")[0] == row["chosen"].split("\n")[0]  # a surgical edit
    assert report["oracle_usage"]["input_tokens"] > 0 and report["oracle_usage"]["cost_usd"] > 0
    assert len(read_examples(str(out / "pairs.jsonl"), pairs=True)) == c["pairs"]
    assert_key_nowhere(out)


def synthetic_problems(path: Path, n: int) -> Path:
    """GSM8K-shaped problems with a student's answer; three in four wrong by one in the last step."""
    rows = []
    for i in range(n):
        a, b = 10 + i, 3 + i % 17
        got = a + b + (0 if i % 4 == 0 else 1)
        rows.append({"question": f"Sam has {a} marbles and finds {b} more. How many now? (case {i})",
                     "answer": f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b}\n#### {a + b}",
                     "student": f"Sam starts with {a}.\nHe finds {b}, so {a} + {b} = {got}.\nA: {got}"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def faulty() -> FakeSettings:
    return FakeSettings(api_key=KEY, latency_s=0.05, fault_rate=0.2, content_fault_rate=0.1,
                        timeout_sleep_s=1.0, retry_after_s=0.05)


def test_faults_and_kill9_then_rerun_equals_uninterrupted(micro_model_dir, tmp_path):
    problems = synthetic_problems(tmp_path / "problems.jsonl", 400)
    args = ("problems=jsonl", f"problems.source.path={problems}", "problems.source.completion_keys=[student]",
            "with_reference=true", "oracle.max_in_flight=16", "oracle.backend.timeout_s=0.5",
            "oracle.backend.max_attempts=20")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    with FakeServer(faulty()).start() as srv:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
        proc = subprocess.Popen(command(killed, srv.url, micro_model_dir, *args), cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal, deadline = killed / "journal" / "oracle.jsonl", time.time() + 120
        while time.time() < deadline and (not journal.exists() or journal.read_bytes().count(b"\n") < 200):
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(1.2)  # let the server finish the calls that were in flight: those were paid
        at_kill = journal.read_bytes().count(b"\n")
        ok_before = srv.stats_snapshot()["counts"].get("ok", 0)
        run(command(killed, srv.url, micro_model_dir, *args))
        ok_rerun = srv.stats_snapshot()["counts"]["ok"] - ok_before
        unique_paid = len(srv.stats_snapshot()["ok_by_key"])
    with FakeServer(faulty()).start() as srv:
        run(command(clean, srv.url, micro_model_dir, *args))

    report = json.loads((killed / "report.json").read_text())
    c = report["counts"]
    assert 200 <= at_kill < c["oracle_requests"]  # the kill came in the middle of the Oracle stage
    assert c["oracle_skipped_journaled_this_run"] == at_kill  # journaled replies were not asked again
    assert ok_rerun == c["oracle_requests"] - at_kill == c["oracle_replies_this_run"]
    keys = [r["key"] for r in read(journal)]
    assert len(keys) == len(set(keys)) == c["oracle_requests"] == unique_paid  # none lost, none twice
    for name in OUTPUTS:  # the same dataset, byte for byte, as the run nobody killed
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
    drops = report["drops"]["rectify"]
    assert {"oracle_error:no_markers", "oracle_error:empty", "oracle_wrong"} <= set(drops)
    assert c["pairs"] + sum(drops.values()) == c["wrong"] == 300 and c["rft"] == 100
    assert sum(report["oracle_attempts_this_run"].get(k, 0) for k in ("retry_429", "retry_500")) > 0
    # the requests on the wire at the kill: every one the server answered (paid, never journaled) is among those
    # the report counts as lost in flight, and their estimated cost is on top of the journaled replies' cost
    u = report["oracle_usage"]
    assert ok_before - at_kill <= u["calls_lost_in_flight"] <= 16  # oracle.max_in_flight: at most that many out
    assert u["cost_usd_with_lost_estimate"] >= u["cost_usd"]
    print(f"\nkill -9 after {at_kill}/{c['oracle_requests']} journaled; rerun asked {ok_rerun}; "
          f"in flight at the kill and paid twice: {ok_before - at_kill}; counted lost in flight: "
          f"{u['calls_lost_in_flight']} (cost estimate {u['cost_usd_lost_estimate']} of {u['cost_usd']}); "
          f"pairs {c['pairs']}; "
          f"drops {drops}; rerun attempts {report['oracle_attempts_this_run']}")
    assert_key_nowhere(tmp_path)


def test_message_batches_resume_without_resubmitting(micro_model_dir, tmp_path):
    """kill -9 while a batch is processing: the rerun collects that batch instead of submitting it again."""
    problems = synthetic_problems(tmp_path / "problems.jsonl", 60)
    out = tmp_path / "batch"
    args = ("problems=jsonl", f"problems.source.path={problems}", "problems.source.completion_keys=[student]",
            "with_reference=true", "oracle=anthropic_batch", "oracle.backend.gather_s=0.3",
            "oracle.backend.poll_s=0.2", "oracle.backend.backoff_s=0.05")
    with FakeServer(FakeSettings(api_key=KEY, batch_delay_s=3600, fault_rate=0.1)).start() as srv:
        env = {**os.environ, "ANTHROPIC_API_KEY": KEY}
        cmd = [c for c in command(out, srv.url, micro_model_dir, *args) if c != "oracle=fake"]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ledger, deadline = out / "journal" / "batches.jsonl", time.time() + 120
        while time.time() < deadline and not (ledger.exists() and ledger.read_bytes().endswith(b"\n")):
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the batch is submitted and still "in progress"
        proc.wait()
        assert srv.stats_snapshot()["batches"] == 1
        srv.settings.batch_delay_s = 0.2
        run(cmd)
        first = read(ledger)[0]
        report = json.loads((out / "report.json").read_text())
        assert report["counts"]["oracle_requests"] == len(first["custom_ids"]) == 105  # 45 wrong + 60 direct
        # the first batch was collected, not resubmitted: later batches only retry its errored requests
        assert srv.stats_snapshot()["batches"] == len(read(ledger)) and len(read(ledger)) <= 4
        assert sum(len(r["custom_ids"]) for r in read(ledger)[1:]) < 40
    assert report["counts"]["pairs"] > 30 and len(read(out / "journal" / "oracle.jsonl")) == 105


def oracle_run(tmp_path: Path, in_flight: int) -> tuple[tuple[str, ...], Path, dict]:
    """(overrides, out_dir, env) of a run whose 60 problems come with the student's answer: Oracle calls only."""
    problems = synthetic_problems(tmp_path / "problems.jsonl", 60)
    args = ("problems=jsonl", f"problems.source.path={problems}", "problems.source.completion_keys=[student]",
            "with_reference=true", f"oracle.max_in_flight={in_flight}")
    return args, tmp_path / "run", {**os.environ, "ANTHROPIC_API_KEY": KEY}


def test_identical_requests_are_asked_once_and_every_twin_gets_the_reply(micro_model_dir, tmp_path):
    """Ten problems appear twice with the same student answer (GSM8K's train split repeats questions): each
    distinct request is paid once, every twin still makes its pair and its direct row, and a rerun asks nothing."""
    args, out, env = oracle_run(tmp_path, in_flight=4)
    problems = tmp_path / "problems.jsonl"
    rows = problems.read_text().splitlines(keepends=True)
    problems.write_text("".join(rows + rows[:10]))  # rows 0-9 again: 7 of them wrong, 10 direct
    with FakeServer(FakeSettings(api_key=KEY)).start() as srv:
        run(command(out, srv.url, micro_model_dir, *args))
        paid = srv.stats_snapshot()["counts"]["ok"]
        run(command(out, srv.url, micro_model_dir, *args))
        assert srv.stats_snapshot()["counts"]["ok"] == paid  # the rerun: all from the journal
    c = json.loads((out / "report.json").read_text())["counts"]
    assert c["oracle_requests"] == 45 + 7 + 60 + 10 and c["oracle_distinct_requests"] == 45 + 60 == paid
    assert c["oracle_twins_asked_once_this_run"] == 17
    assert len(read(out / "journal" / "oracle.jsonl")) == paid
    pairs = read(out / "pairs.jsonl")
    assert c["wrong"] == 52 and len(pairs) == 52 and len({p["id"] for p in pairs}) == 52
    by_prompt: dict[str, set] = {}
    for p in pairs:
        by_prompt.setdefault(p["prompt"] + p["rejected"], set()).add(p["chosen"])
    assert all(len(chosen) == 1 for chosen in by_prompt.values())  # twins got the same reply
    assert c["direct"] == 70


def test_a_400_stops_the_run_journals_nothing_and_the_rerun_asks_again(micro_model_dir, tmp_path):
    """The balance runs out after 40 answers: Anthropic answers 400 invalid_request_error to everything. The run
    stops with one line; the 400s are not journaled as replies, so after the top-up the rerun asks exactly
    the requests that got no answer."""
    args, out, env = oracle_run(tmp_path, in_flight=4)
    with FakeServer(FakeSettings(api_key=KEY, credit_after=40)).start() as srv:
        proc = subprocess.run(command(out, srv.url, micro_model_dir, *args), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        refused = srv.stats_snapshot()["counts"].get("400", 0)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: Anthropic API answered 400") and "credit balance is too low" in line
    journaled = read(out / "journal" / "oracle.jsonl")
    assert refused >= 1 and len(journaled) == 40 and all(r.get("error") in (None, "") for r in journaled)
    assert not (out / "pairs.jsonl").exists()  # no output set from a run that stopped
    with FakeServer(FakeSettings(api_key=KEY)).start() as srv:  # topped up
        run(command(out, srv.url, micro_model_dir, *args))
        asked = srv.stats_snapshot()["counts"]["ok"]
    c = json.loads((out / "report.json").read_text())["counts"]
    assert c["oracle_skipped_journaled_this_run"] == 40 and asked == c["oracle_requests"] - 40 > 0


def test_a_second_run_on_the_same_out_dir_is_refused_and_nothing_is_paid_twice(micro_model_dir, tmp_path):
    args, out, env = oracle_run(tmp_path, in_flight=2)
    # ~80 calls, 2 at a time, 0.5 s each: the first run is still calling when the second has started up
    with FakeServer(FakeSettings(api_key=KEY, latency_s=0.5)).start() as srv:
        first = subprocess.Popen(command(out, srv.url, micro_model_dir, *args), cwd=ROOT, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        journal, deadline = out / "journal" / "oracle.jsonl", time.time() + 120
        while time.time() < deadline and not (journal.exists() and journal.read_bytes().count(b"\n") >= 2):
            time.sleep(0.05)
        second = subprocess.run(command(out, srv.url, micro_model_dir, *args), cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300)
        assert first.wait(timeout=300) == 0
        paid = srv.stats_snapshot()["counts"]["ok"]
    assert second.returncode == 2 and "Traceback" not in second.stderr
    line = second.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: {out / 'journal'} is in use by pid {first.pid} on ")
    c = json.loads((out / "report.json").read_text())["counts"]
    keys = [r["key"] for r in read(journal)]
    assert paid == c["oracle_requests"] == len(keys) == len(set(keys))  # each call paid and journaled once


def test_a_rerun_with_another_seed_resumes_when_nothing_is_sampled(micro_model_dir, tmp_path):
    """The problems carry their student answers, so nothing is sampled: seed and chunk_size do not change any
    record, and a rerun with others resumes the journals (it was refused) and asks the Oracle nothing again."""
    args, out, env = oracle_run(tmp_path, in_flight=4)
    with FakeServer(FakeSettings(api_key=KEY)).start() as srv:
        run(command(out, srv.url, micro_model_dir, *args))
        first = srv.stats_snapshot()["counts"]["ok"]
        run(command(out, srv.url, micro_model_dir, *args, "seed=7", "chunk_size=8"))
        assert srv.stats_snapshot()["counts"]["ok"] == first  # every call came from the journal
    c = json.loads((out / "report.json").read_text())["counts"]
    assert c["oracle_skipped_journaled_this_run"] == c["oracle_requests"] == first
