"""Oracle backends against the local fake API: prompt and markers, auth, retries, 429s, fatal errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from spot.rectify.oracles.anthropic import AnthropicOracle
from spot.rectify.oracles.fake_server import REFUSALS, FakeServer, FakeSettings
from spot.rectify.oracles.openai_compatible import OpenAICompatOracle
from spot.rectify.oracles.prompts import END, START, Prompts, strip_markers
from spot.retry import Rejected, RemoteFatal, Unavailable, parse_retry_after

KEY = "sk-ant-test-oracle-0123456789"
STUDENT = "Tom has 3 apples and buys 4, so 3 + 4 = 8.\nA: 8"
PROBLEM = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def test_prompt_variants_and_slots_are_filled_once():
    p = Prompts()
    plain = p.build("rectify", "What is {answer}?", "x = 1", None)
    with_ref = p.build("rectify", "What is {answer}?", "x = 1", "7")
    assert "teaching assistant" in plain.system and START in plain.system and END in plain.system
    assert "\\boxed{ANSWER}" in plain.system
    assert "What is {answer}?" in plain.user  # a slot inside the problem text is not substituted
    assert "Reference final answer" not in plain.user and "Reference final answer\n7" in with_ref.user
    assert plain.system == with_ref.system  # the cacheable part is shared by both variants


@pytest.mark.parametrize("raw, text, error", [
    (f"thinking...\n{START}\nfixed\nTherefore.\n{END}\n", "fixed\nTherefore.", None),
    (f"shape:\n{START}\n<answer>\n{END}\nreal:\n{START}\nreal one\n{END}", "real one", None),
    (f"{START}\n```\nfenced\n```\n{END}", "fenced", None),
    ("no markers at all", None, "no_markers"),
    (f"{START}\ncut short by max_tokens", None, "no_end_marker"),
    (f"{START}\n  \n{END}", None, "empty"),
])
def test_strip_markers(raw, text, error):
    assert strip_markers(raw) == (text, error)


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert 0 <= parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) < 1
    assert parse_retry_after({}) is None


@pytest.fixture
def server():
    with FakeServer(FakeSettings(api_key=KEY, timeout_sleep_s=1.0)).start() as srv:
        yield srv


def anthropic_oracle(srv, **kw) -> AnthropicOracle:
    kw = {"max_attempts": 12, "backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 0.5, **kw}
    return AnthropicOracle(model="fake", base_url=srv.url, **kw)


def test_anthropic_rectifies_through_the_sdk(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    reply = asyncio.run(anthropic_oracle(server).rectify(PROBLEM, STUDENT, "7"))
    assert reply.error is None and reply.input_tokens > 0 and reply.output_tokens > 0
    assert reply.text.startswith("Tom has 3 apples") and reply.text.endswith("$\\boxed{7}$.")
    assert START in reply.raw and START not in reply.text


def test_bearer_header_is_accepted_too(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    oracle = OpenAICompatOracle(model="fake", base_url=f"{server.url}/v1", backoff_s=0.01)
    reply = asyncio.run(oracle.solve(PROBLEM, "7"))
    assert reply.error is None and reply.text.endswith("$\\boxed{7}$.")


def test_every_transport_fault_is_retried_and_counted(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.settings.fault_rate, server.settings.retry_after_s = 0.5, 0.05
    oracle = anthropic_oracle(server)

    async def many():
        return await asyncio.gather(*(oracle.rectify(f"{PROBLEM} ({i})", STUDENT, "7") for i in range(40)))

    replies = asyncio.run(many())
    assert all(r.error is None for r in replies)
    stats, counts = oracle.stats, server.stats_snapshot()["counts"]
    assert {"429", "500", "529", "timeout", "malformed"} <= set(counts)  # every fault kind was exercised
    assert stats["attempts"] == 40 + sum(v for k, v in stats.items() if k.startswith("retry_"))
    assert stats["attempts"] == sum(counts.values())  # the client counted what the server saw


def test_a_429_pauses_every_call_for_retry_after(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.settings.fault_rate, server.settings.retry_after_s = 0.0, 0.6
    oracle = anthropic_oracle(server)

    async def run():
        server.draw_fault = lambda: "429"  # the first request is rate limited...
        first = asyncio.create_task(oracle.rectify(PROBLEM, STUDENT, "7"))
        while "429" not in server.stats_snapshot()["counts"]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # the 429 reaches the client
        server.draw_fault = lambda: None  # ...then the API is fine, but callers must still wait
        t0 = time.monotonic()
        await oracle.rectify(f"{PROBLEM}?", STUDENT, "7")
        await first
        return time.monotonic() - t0

    assert asyncio.run(run()) >= 0.3  # the second call waited out the first call's retry-after


def test_gives_up_after_max_attempts(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.draw_fault = lambda: "500"
    oracle = anthropic_oracle(server, max_attempts=3)
    with pytest.raises(Unavailable):
        asyncio.run(oracle.rectify(PROBLEM, STUDENT))
    assert oracle.stats["attempts"] == 3 and oracle.stats["given_up"] == 1


def test_bad_key_stops_the_run_and_missing_key_is_named(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong")
    with pytest.raises(RemoteFatal, match="401"):
        asyncio.run(anthropic_oracle(server).rectify(PROBLEM, STUDENT))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(RemoteFatal, match="ANTHROPIC_API_KEY"):
        anthropic_oracle(server)


@pytest.mark.parametrize("backend", ["anthropic", "openai"])
def test_a_refusal_of_one_request_is_rejected_and_an_account_refusal_stops(server, monkeypatch, backend):
    """413 and a 400 concern this request alone: `Rejected` with the status and the API's words, asked once. 403
    (and 401, 404, no credit) would answer every request: the run stops, naming the status."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    oracle = (anthropic_oracle(server) if backend == "anthropic"
              else OpenAICompatOracle(model="fake", base_url=f"{server.url}/v1", backoff_s=0.01))
    server.settings.refuse = {"(too large)": 413, "(invalid)": 400, "(forbidden)": 403}
    for text, status in (("(too large)", 413), ("(invalid)", 400)):
        with pytest.raises(Rejected) as refused:
            asyncio.run(oracle.rectify(f"{PROBLEM} {text}", STUDENT))
        assert (refused.value.status, refused.value.message) == (status, REFUSALS[status][1])
        assert server.stats_snapshot()["counts"][str(status)] == 1  # not retried
    with pytest.raises(RemoteFatal, match="answered 403") as stop:
        asyncio.run(oracle.rectify(f"{PROBLEM} (forbidden)", STUDENT))
    assert REFUSALS[403][1] in str(stop.value) and "\n" not in str(stop.value)


def test_a_reply_that_is_never_readable_is_rejected(server, monkeypatch):
    """Answered every time, never readably: asking again would pay for the same garbage, so it is this
    request's refusal, not the network's failure (which a rerun asks again)."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.draw_fault = lambda: "malformed"
    with pytest.raises(Rejected, match="no readable reply in 3 attempts") as refused:
        asyncio.run(anthropic_oracle(server, max_attempts=3).rectify(PROBLEM, STUDENT))
    assert refused.value.status is None


def test_useless_replies_come_back_with_a_reason(server, monkeypatch):
    """Content faults are replies (paid for): returned with an error, not retried."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    server.settings.content_fault_rate = 1.0
    oracle = anthropic_oracle(server, timeout_s=30.0)  # no stall is injected: on a loaded machine 0.5 s can pass

    async def many():
        return await asyncio.gather(*(oracle.rectify(f"{PROBLEM} {i}", STUDENT, "7") for i in range(30)))

    errors = {r.error for r in asyncio.run(many())}
    assert {"no_markers", "empty"} <= errors  # and "wrong answer" ones come back with error None
    assert oracle.stats["attempts"] == 30


def test_fake_server_command_line(tmp_path):
    """The dry-run server as users start it: key from an environment variable, either header accepted."""
    import os
    import subprocess
    import sys

    import httpx

    env = {**os.environ, "FAKE_KEY": KEY}
    cmd = [sys.executable, "-m", "spot.rectify.oracles.fake_server", "--port", "0", "--require-key-env", "FAKE_KEY",
           "--refuse", "a=b (refused)=413"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[-1]
        body = {"model": "m", "messages": [{"role": "user", "content": f"## Problem\n{PROBLEM}"}]}
        assert httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": KEY}).status_code == 200
        ok = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and END in ok.json()["choices"][0]["message"]["content"]
        assert httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": "wrong"}).status_code == 401
        body["messages"][0]["content"] += " a=b (refused)"
        assert httpx.post(f"{url}/v1/messages", json=body, headers={"x-api-key": KEY}).status_code == 413
    finally:
        proc.terminate()
        proc.wait()
