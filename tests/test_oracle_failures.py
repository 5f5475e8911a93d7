"""Failures in the Oracle stage, in process against the fake Claude through the real anthropic SDK: a request
the API refuses for good is one dropped item (and is not asked again unless told), while a stop (an account
error, SIGTERM, a full disk) is one line, journals every reply that arrived and counts the calls it cancelled on
the wire as perhaps paid."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from spot.answers import MathVerifier
from spot.errors import DiskFull
from spot.rectify.config import Price, RectifyConfig
from spot.rectify.journal import Journal
from spot.rectify.oracle_stage import OracleStopped
from spot.rectify.oracles.anthropic import AnthropicOracle
from spot.rectify.oracles.fake_server import REFUSALS, FakeServer, FakeSettings
from spot.rectify.pipeline import run
from spot.rectify.problems import Item
from spot.rows import write_atomic

KEY = "sk-ant-test-failures-0123456789"
OUTPUTS = ("pairs.jsonl", "rft.jsonl", "direct.jsonl", "drops.jsonl")


@pytest.fixture(autouse=True)
def api_key(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)


def student(a: int, b: int, got: int) -> str:
    return f"Sam starts with {a}.\nHe finds {b}, so {a} + {b} = {got}.\nA: {got}"


def problems(n: int = 24) -> list[Item]:
    """Problems that come with the student's answer (nothing is sampled): one in three right, the rest wrong by
    one in the last step. 16 wrong of 24: 40 Oracle requests with the direct ones."""
    items = []
    for i in range(n):
        a, b = 10 + i, 3 + i % 7
        items.append(Item(id=f"s{i}", prompt=f"Sam has {a} marbles and finds {b} more. How many now? (case {i})",
                          answer=str(a + b), completion=student(a, b, a + b + (i % 3 != 0))))
    return items


def wrong_step(i: int) -> str:
    """Text found only in the rectify request of problem i (its wrong student answer)."""
    a, b = 10 + i, 3 + i % 7
    return f"so {a} + {b} = {a + b + 1}."


def rectify(srv: FakeServer, out: Path, **cfg) -> dict:
    """The pipeline's own entry (spot.rectify.pipeline.run), with the Anthropic backend pointed at `srv`."""
    oracle = AnthropicOracle(model="fake", base_url=srv.url, max_in_flight=4, timeout_s=10.0, backoff_s=0.01,
                             max_backoff_s=0.05)
    cfg = {"with_reference": True, "max_in_flight": 4, "price": Price(input=3.0, output=15.0), "progress": False,
           **cfg}
    return run(problems(), lambda *a: pytest.fail("nothing is to be sampled"), lambda text: [ord(c) for c in text],
               MathVerifier(), oracle, RectifyConfig(out_dir=str(out), **cfg), {})


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def served(srv: FakeServer) -> dict[str, int]:
    return srv.stats_snapshot()["counts"]


def signal_once_answered(srv: FakeServer, answered: int, signum: int) -> None:
    """Sends this process `signum` once the server has answered `answered` requests (a timer would depend on
    how loaded the machine is)."""
    def watch():
        deadline = time.time() + 60
        while served(srv).get("ok", 0) < answered and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, daemon=True).start()


def settled(srv: FakeServer, latency_s: float) -> dict[str, int]:
    """The server's counts once the requests it still holds (their client gone) are answered: those are paid."""
    time.sleep(latency_s + 0.3)
    return served(srv)


@pytest.mark.parametrize("status", [413, 400])
def test_a_request_refused_for_good_is_one_drop_and_is_asked_again_only_when_told(tmp_path, status):
    out = tmp_path / "run"
    with FakeServer(FakeSettings(api_key=KEY, refuse={wrong_step(5): status})).start() as srv:
        report = rectify(srv, out)
        first = {name: (out / name).read_bytes() for name in OUTPUTS}
        assert served(srv)[str(status)] == 1  # refused once, and not retried: asking again gets the same answer
        c = report["counts"]
        assert c["oracle_rejected_this_run"] == 1 and c["oracle_replies_this_run"] == c["oracle_requests"] - 1
        assert report["drops"]["rectify"]["oracle_rejected"] == 1
        assert c["pairs"] + sum(report["drops"]["rectify"].values()) == c["wrong"] == 16
        assert [d for d in read(out / "drops.jsonl") if d["reason"] == "oracle_rejected"] == [
            {"id": "s5", "stage": "rectify", "reason": "oracle_rejected", "status": status,
             "message": REFUSALS[status][1]}]
        assert (out / "COMPLETE").exists()

        paid = served(srv)["ok"]
        again = rectify(srv, out)  # the refusal is journaled: nothing is asked
        assert again["counts"]["oracle_calls_this_run"] == 0 and served(srv)["ok"] == paid
        assert served(srv)[str(status)] == 1
        assert {name: (out / name).read_bytes() for name in OUTPUTS} == first

        retried = rectify(srv, out, retry_rejected=True)  # still refused: asked once more, still dropped
        assert retried["counts"]["oracle_calls_this_run"] == 1 and served(srv)[str(status)] == 2
        assert retried["drops"]["rectify"]["oracle_rejected"] == 1

        srv.settings.refuse = {}  # the limit was raised, or the prompt shortened
        fixed = rectify(srv, out, retry_rejected=True)
        assert fixed["counts"]["oracle_calls_this_run"] == 1 and served(srv)["ok"] == paid + 1
        assert "oracle_rejected" not in fixed["drops"]["rectify"]
        assert any(p["id"] == "s5" for p in read(out / "pairs.jsonl"))


@pytest.mark.parametrize("grace_s", [30.0, 0.0])
def test_an_account_error_stops_at_once_and_the_replies_in_flight_are_journaled_or_counted(tmp_path, grace_s):
    """403 on the third request, answered at once while the other calls of its wave are still on the wire (0.3 s
    of latency). With time to wait, their replies are journaled; with none, they are cancelled, and the rerun's
    report counts every one the server answered (and billed) as lost in flight."""
    out, latency = tmp_path / "run", 0.3
    with FakeServer(FakeSettings(api_key=KEY, latency_s=latency, refuse={wrong_step(4): 403})).start() as srv:
        with pytest.raises(OracleStopped) as stop:
            rectify(srv, out, stop_grace_s=grace_s)
        message = str(stop.value)
        assert "\n" not in message and message.startswith("Anthropic API answered 403 (permission denied")
        assert REFUSALS[403][1] in message
        journaled = len(read(out / "journal" / "oracle.jsonl"))
        paid_lost = settled(srv, latency)["ok"] - journaled  # answered by the server, never journaled
        assert f"stopped with {journaled} replies journaled this run" in message
        assert not (out / "COMPLETE").exists()  # no output set from a run that stopped

        srv.settings.refuse, srv.settings.latency_s = {}, 0.0  # the key's permissions were fixed
        report = rectify(srv, out)
    lost = report["oracle_usage"]["calls_lost_in_flight"]
    if grace_s:
        assert journaled >= 1 and paid_lost == 0 == lost  # every call on the wire came back and was journaled
    else:
        assert f"{lost} calls on the wire left without their reply" in message
        assert 1 <= paid_lost <= lost <= 4  # oracle.max_in_flight: no more were out
        assert report["oracle_usage"]["cost_usd_with_lost_estimate"] > report["oracle_usage"]["cost_usd"]
    assert report["counts"]["oracle_skipped_journaled_this_run"] == journaled


def test_sigterm_winds_down_journals_what_was_on_the_wire_and_restores_the_handler(tmp_path):
    out, latency = tmp_path / "run", 0.3
    handler = signal.getsignal(signal.SIGTERM)
    with FakeServer(FakeSettings(api_key=KEY, latency_s=latency)).start() as srv:
        signal_once_answered(srv, 8, signal.SIGTERM)  # in the third wave, whatever the machine's load
        with pytest.raises(OracleStopped) as stop:
            rectify(srv, out)
        journaled = len(read(out / "journal" / "oracle.jsonl"))
        assert settled(srv, latency)["ok"] == journaled  # every call on the wire at the signal was waited for
    message = str(stop.value)
    assert message == (f"SIGTERM: the Oracle stage ended with {journaled} replies journaled this run; "
                       "rerun the same command to resume")
    assert (stop.value.prefix, stop.value.exit_status) == ("stopped", 128 + signal.SIGTERM)  # as a shell reports it
    assert 8 <= journaled < 40 and signal.getsignal(signal.SIGTERM) is handler


@pytest.mark.parametrize("full_at", ["oracle.jsonl", "oracle_calls.jsonl"])
def test_a_full_disk_stops_with_one_line_and_the_rerun_equals_an_uninterrupted_run(tmp_path, monkeypatch, full_at):
    """The disk fills up at the first write to `full_at` after 30 journal writes: from then on every journal's
    next write goes half way, then fails (ENOSPC). The stop is one line naming the file; every reply that
    arrived is journaled, or counted as perhaps paid by the rerun's report or by the stop's line; the rerun
    after freeing space writes what an uninterrupted run writes."""
    latency, writes, full, real_write = 0.05, [], [], Journal._write

    def fills_up(journal: Journal, data: bytes) -> None:
        writes.append(journal.path.name)
        if full or (len(writes) > 30 and journal.path.name == full_at):
            full.append(journal.path.name)
            real_write(journal, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_write(journal, data)

    killed, clean = tmp_path / "full", tmp_path / "clean"
    with FakeServer(FakeSettings(api_key=KEY, latency_s=latency)).start() as srv:
        monkeypatch.setattr(Journal, "_write", fills_up)
        with pytest.raises(OracleStopped) as stop:
            rectify(srv, killed)
        monkeypatch.setattr(Journal, "_write", real_write)  # space was freed
        message = str(stop.value)
        assert "\n" not in message
        assert re.match(rf"cannot write {killed / 'journal' / full_at}: the disk is full \(No space "
                        r"left on device\); free space and rerun the same command to resume; the Oracle stage "
                        r"stopped with \d+ replies journaled", message), message
        unjournaled = re.search(r"(\d+) replies arrived but could not be journaled", message)
        assert (unjournaled is not None) == (full_at == "oracle.jsonl")  # the reply in hand when the disk filled
        paid = settled(srv, latency)["ok"]
        journal = Journal(killed / "journal" / "oracle.jsonl")  # opening it cuts the torn tail
        at_stop = len(journal.records)
        journal.close()
        report = rectify(srv, killed)
        rerun_paid = served(srv)["ok"] - paid
    with FakeServer(FakeSettings(api_key=KEY)).start() as srv:
        rectify(srv, clean)

    u, c = report["oracle_usage"], report["counts"]
    assert 0 < at_stop < c["oracle_requests"] and c["oracle_skipped_journaled_this_run"] == at_stop
    assert rerun_paid == c["oracle_requests"] - at_stop  # the rerun asked what was missing, once
    left = re.search(r"(\d+) calls on the wire left without their reply", message)
    assert u["calls_lost_in_flight"] == (int(left[1]) if left else 0)  # what the stop said, the report counts
    assert paid - at_stop <= u["calls_lost_in_flight"] + (int(unjournaled[1]) if unjournaled else 0)
    keys = [r["key"] for r in read(killed / "journal" / "oracle.jsonl")]
    assert len(keys) == len(set(keys)) == c["oracle_requests"]
    for name in OUTPUTS:
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name


def test_writing_a_file_on_a_full_disk_is_one_line_and_gives_the_space_back(tmp_path, monkeypatch):
    """The outputs (and the manifest) are written with write_atomic: on a full disk, one line naming the file,
    the old file untouched and no half-written temporary file left to hold the space."""
    target = tmp_path / "pairs.jsonl"
    target.write_text("the last run's\n")

    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DiskFull, match=re.escape(f"cannot write {target}: the disk is full")):
        write_atomic(target, "this run's\n")
    assert target.read_text() == "the last run's\n" and [p.name for p in tmp_path.iterdir()] == ["pairs.jsonl"]
