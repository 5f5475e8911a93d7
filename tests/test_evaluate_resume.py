"""evaluate.py's journal and the server engine's faults: replies that cannot be used are retried and change
nothing, a server that keeps failing stops the run with one line and a rerun asks only for what is missing, an
evaluation stopped half-way resumes to the metrics of an uninterrupted one, and a stalled server still shows
progress. The server is a small OpenAI-compatible stand-in on 127.0.0.1 whose answer to a prompt depends on the
prompt and its seed, so a resumed request sent with the wrong seed gives other completions."""

import hashlib
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from spot.engines import EngineSpec
from spot.engines.hf import HFEngine
from spot.evaluate.evaluation import EvalPlan, evaluate_model
from spot.generation import Sampling
from spot.rectify.journal import JournalError
from spot.toy.suites import toy_suite

ROOT = Path(__file__).resolve().parents[1]
TOY_BASE = str(ROOT / "assets" / "toy-base")
SAMPLED = Sampling(temperature=0.7)
N_PROBLEMS, N_SAMPLES, BUDGET = 12, 3, 8
REQUESTS = N_PROBLEMS * N_SAMPLES


class Completions(BaseHTTPRequestHandler):
    """GET /v1/models and POST /v1/completions. Request number k (from 1) gets `server.fault(k)` instead of an
    answer when that is not None: malformed, no_choices, no_text, 500, or stall (sleep `stall_s`, then answer)."""

    server: "FakeServer"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send(200, json.dumps({"data": [{"id": "toy"}]}).encode())

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        with self.server.lock:
            self.server.requests += 1
            fault = self.server.fault(self.server.requests)
        if fault == "stall":
            time.sleep(self.server.stall_s)
        replies = {"malformed": b'{"choices": [{"text": "#### 1"', "no_choices": b'{"choices": []}',
                   "no_text": b'{"choices": [{"finish_reason": "length"}]}', "500": b"{}"}
        if fault in replies:
            self._send(500 if fault == "500" else 200, replies[fault])
            return
        # right for about half of the (prompt, seed) pairs, so every sample of a problem depends on its seed
        digest = hashlib.sha256(json.dumps([body["prompt"], body["seed"]]).encode()).digest()
        text = f"#### {self.server.answers[tuple(body['prompt'])]}" if digest[0] % 2 else "#### -1"
        self._send(200, json.dumps({"choices": [{"text": text}], "usage": {"completion_tokens": 3}}).encode())


class FakeServer(ThreadingHTTPServer):
    def __init__(self, answers: dict[tuple, str], fault=lambda k: None, stall_s: float = 0.0):
        super().__init__(("127.0.0.1", 0), Completions)
        self.answers, self.fault, self.stall_s = answers, fault, stall_s
        self.requests, self.lock = 0, threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


def suites():
    (suite,) = toy_suite("in_domain", n=N_PROBLEMS, n_samples=N_SAMPLES, max_new_tokens=BUDGET)
    return [suite]


@pytest.fixture(scope="module")
def answers() -> dict[tuple, str]:
    """Each suite prompt's token ids, as the engine sends them, to its reference answer."""
    from spot.chat import ChatFormat
    from spot.models import load_tokenizer

    chat = ChatFormat(load_tokenizer(TOY_BASE))
    (suite,) = suites()
    return {tuple(chat.prompt_ids(p, suite.template)): a for p, a in zip(suite.prompts, suite.answers, strict=True)}


@pytest.fixture
def serve(answers):
    started = []

    def start(fault=lambda k: None, stall_s: float = 0.0) -> FakeServer:
        started.append(FakeServer(answers, fault, stall_s))
        return started[-1]

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def server_engine(server: FakeServer) -> EngineSpec:
    return EngineSpec("spot.engines.server.ServerEngine", {"base_url": server.url, "served_model": "toy",
                                                           "max_attempts": 4, "backoff_s": 0.0})


def on_server(server: FakeServer, out: Path) -> dict:
    plan = EvalPlan(model=TOY_BASE, base=None, sampling=SAMPLED, kl=None, progress=False)
    return evaluate_model(plan, suites(), out, server_engine(server))


def completions(out: Path) -> list[str]:
    return [json.loads(line)["completion"] for line in (out / "samples.jsonl").read_text().splitlines()]


def same_scores(a: dict, b: dict) -> bool:
    return a["trained"]["suites"] == b["trained"]["suites"] and a["trained"]["correct"] == b["trained"]["correct"]


@pytest.fixture
def clean(serve, tmp_path) -> tuple[dict, list[str]]:
    """An uninterrupted evaluation on a server that never fails."""
    server = serve()
    metrics = on_server(server, tmp_path / "clean")
    assert server.requests == REQUESTS
    assert 0.2 < metrics["trained"]["suites"]["toy_in_domain"] < 0.8  # both right and wrong samples
    return metrics, completions(tmp_path / "clean")


def test_unusable_replies_are_retried_and_change_nothing(serve, clean, tmp_path):
    faults = {2: "malformed", 5: "no_choices", 7: "no_text", 11: "500", 12: "malformed"}
    server = serve(lambda k: faults.get(k))
    metrics = on_server(server, tmp_path / "faulty")
    assert server.requests == REQUESTS + len(faults)
    assert same_scores(metrics, clean[0]) and completions(tmp_path / "faulty") == clean[1]


def test_a_server_that_keeps_failing_stops_with_one_line_and_a_rerun_asks_only_for_the_rest(serve, clean, tmp_path):
    answered = 10
    failing = serve(lambda k: "malformed" if k > answered else None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), f"model={TOY_BASE}", "generation=server",
         f"generation.options.base_url={failing.url}", "generation.options.served_model=toy",
         "generation.options.max_attempts=2", "generation.options.backoff_s=0",
         "generation.options.max_in_flight=1", "eval=toy_in_domain",  # one at a time: the first 10 are answered
         f"eval.suites.toy_in_domain.n={N_PROBLEMS}", f"eval.n_samples={N_SAMPLES}", f"eval.max_new_tokens={BUDGET}",
         f"eval.sampling.temperature={SAMPLED.temperature}", "wandb.mode=disabled", "eval.progress=false",
         "hydra.run.dir=out"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == proc.stderr.strip().splitlines()[-1], proc.stderr[-3000:]
    assert "no reply after 2 attempts (last: malformed_json)" in errors[0]
    assert f"{answered} completions are journaled in {tmp_path}/out/journal/trained.jsonl" in errors[0]
    assert not (tmp_path / "out" / "metrics.json").exists()

    healthy = serve()
    metrics = on_server(healthy, tmp_path / "out")  # the same evaluation, into the same directory
    assert healthy.requests == REQUESTS - answered
    assert same_scores(metrics, clean[0]) and completions(tmp_path / "out") == clean[1]


def test_an_evaluation_stopped_half_way_resumes_to_the_uninterrupted_metrics(tmp_path, monkeypatch):
    """transformers' generate in process, greedy, an exception raised once 16 completions (two batches) have
    come back: the rerun generates only the other 24 and scores as a run that was never stopped."""
    plan = EvalPlan(model=TOY_BASE, base=None, sampling=Sampling(batch_size=8), kl=None, progress=False)
    (suite,) = toy_suite("in_domain", n=40)
    whole = evaluate_model(plan, [suite], tmp_path / "whole")
    real, asked = HFEngine.complete, []

    def stops_after_16(self, prompts, *args, on_done, **kwargs):
        came = []

        def arrived(idx, texts):
            on_done(idx, texts)
            came.extend(idx)
            if len(came) >= 16:
                raise KeyboardInterrupt  # what Ctrl-C does; a kill -9 leaves the same journal behind

        return real(self, prompts, *args, on_done=arrived, **kwargs)

    monkeypatch.setattr(HFEngine, "complete", stops_after_16)
    with pytest.raises(KeyboardInterrupt):
        evaluate_model(plan, [suite], tmp_path / "stopped")

    def counted(self, prompts, *args, **kwargs):
        asked.append(len(prompts))
        return real(self, prompts, *args, **kwargs)

    monkeypatch.setattr(HFEngine, "complete", counted)
    resumed = evaluate_model(plan, [suite], tmp_path / "stopped")
    assert asked == [40 - 16]
    assert same_scores(resumed, whole) and completions(tmp_path / "stopped") == completions(tmp_path / "whole")

    asked.clear()  # everything journaled now: nothing is generated, no model is even loaded
    monkeypatch.setattr("spot.evaluate.evaluation.load_for_eval", None)
    assert same_scores(evaluate_model(plan, [suite], tmp_path / "stopped"), whole) and asked == []

    other = EvalPlan(model=TOY_BASE, base=None, sampling=Sampling(temperature=0.7), kl=None, progress=False)
    with pytest.raises(JournalError, match=r"trained.jsonl holds completions made with other settings \(changed: "
                                           r"eval.sampling.temperature\); evaluate into another directory"):
        evaluate_model(other, [suite], tmp_path / "stopped")


def test_a_stalled_server_still_shows_progress(serve, capsys, monkeypatch):
    """A retried 500, then a reply that takes 1.5 s: lines every 0.2 s say 0/1 prompts and count the retry."""
    from spot.engines.server import ServerEngine

    monkeypatch.setenv("SPOT_PROGRESS_EVERY_S", "0.2")
    server = serve(lambda k: "500" if k == 1 else "stall", stall_s=1.5)
    engine = ServerEngine("toy", base_url=server.url, backoff_s=0.0)
    t0 = time.time()
    (text,) = engine.complete([list(next(iter(server.answers)))], SAMPLED, progress=True, desc="stalled")
    assert time.time() - t0 >= 1.5 and text.startswith("#### ")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[stalled] 0/1 prompts")]
    assert len(lines) >= 4 and "1 retries" in lines[-1], lines
