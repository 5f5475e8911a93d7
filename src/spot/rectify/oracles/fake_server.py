"""A local stand-in for the Anthropic Messages API (and an OpenAI-compatible chat endpoint), for tests,
benchmarks and dry runs that must not touch the internet or spend money.

    python -m spot.rectify.oracles.fake_server --answers assets/gsm8k/test.jsonl &     # port 8765, as oracle=fake
    ANTHROPIC_API_KEY=fake python rectify.py problems=gsm8k_solutions oracle=fake
    python -m spot.rectify.oracles.fake_server --port 0 ...     # any free port: pass the URL it prints to rectify.py
                                                               # as oracle.backend.base_url=<URL>

Its "model" rectifies deterministically: it keeps the student's answer, replaces a last line that states a
final answer (`A: 26`, `#### 26`, a \\boxed{}) with `Therefore, the final answer is: $\\boxed{N}$.` and
wraps the result in the SPoT markers. N is the reference answer shown in the prompt, else the answer that
`--answers` (a GSM8K-shape jsonl) gives for the problem, else the student's own (which then fails
verification).

Faults, for retry and crash tests:
- `fault_rate`: that fraction of requests, drawn at random, gets a transport fault: 429 with retry-after, 500,
  529 overloaded, a response slower than the client's timeout, or a malformed body. Clients retry these.
- `content_fault_rate`: that fraction of prompts, chosen by a hash of the prompt (so the same on every
  attempt and every run), gets a well-formed reply that is useless: no markers, empty, or a wrong answer.
- `refuse`: prompts that contain a given text get a given HTTP status with the real API's error body, on every
  attempt (`--refuse "(case 7)=413"`): 413 or 400 refuse that one request for good, 401, 403 or 404 are what
  an account or endpoint problem looks like.
The key is accepted in `x-api-key` or `Authorization: Bearer`; GET /_stats returns counters. Message Batches
(POST /v1/messages/batches, GET .../{id}, GET .../{id}/results) answer every request at once and report the
batch ended after `batch_delay_s`; `fault_rate` of a batch's requests come back errored.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from spot.rectify.oracles.prompts import END, START

TRANSPORT_FAULTS = ("429", "500", "529", "timeout", "malformed")
CONTENT_FAULTS = ("no_markers", "empty", "wrong_answer")
# the error type and message the real API gives with each status that `refuse` can answer
REFUSALS = {400: ("invalid_request_error", "prompt is too long: 213077 tokens > 200000 maximum"),
            401: ("authentication_error", "invalid x-api-key"),
            403: ("permission_error", "Your API key does not have permission to use the specified resource."),
            404: ("not_found_error", "model: fake"),
            413: ("request_too_large", "Request exceeds the maximum allowed number of bytes.")}
_SECTION = re.compile(r"^## ([^\n]+)\n(.*?)(?=\n## |\Z)", re.S | re.M)
_FINAL_LINE = re.compile(r"^\s*(A:|####|Therefore, the final answer)|\\boxed\{")


@dataclass
class FakeSettings:
    latency_s: float = 0.0
    fault_rate: float = 0.0
    content_fault_rate: float = 0.0
    timeout_sleep_s: float = 3.0  # how long a "timeout" fault stalls: longer than the client's timeout
    retry_after_s: float = 0.2
    batch_delay_s: float = 0.5  # how long a Message Batch stays "in_progress"
    api_key: str | None = None  # when set, a request without it gets 401
    credit_after: int | None = None  # when set, every request after that many answers gets 400 (credit too low)
    answers: dict[str, str] = field(default_factory=dict)  # problem text -> answer, for prompts without one
    refuse: dict[str, int] = field(default_factory=dict)  # text in the prompt -> the HTTP status it gets (REFUSALS)
    seed: int = 0


def _unit(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") / 2**64


def fake_completion(user: str, settings: FakeSettings) -> str:
    """The fake model's reply to a SPoT prompt (rectify when a student's answer is shown, else direct)."""
    parts = {m.group(1).strip(): m.group(2).strip() for m in _SECTION.finditer(user)}
    problem, student = parts.get("Problem", user), parts.get("Student's answer")
    answer = parts.get("Reference final answer") or settings.answers.get(problem)
    lines = (student or "We solve the problem step by step.").split("\n")
    if len(lines) > 1 and _FINAL_LINE.search(lines[-1]):
        lines = lines[:-1]
    if answer is None:  # cannot solve: repeat the student's final answer
        from spot.answers import extract_final

        answer = extract_final(student or "") or "0"
    u = _unit(user)
    if u < settings.content_fault_rate:
        fault = CONTENT_FAULTS[int(u / settings.content_fault_rate * len(CONTENT_FAULTS)) % 3]
        if fault == "no_markers":
            return "I think the student made an arithmetic mistake somewhere."
        if fault == "empty":
            return f"{START}\n\n{END}"
        answer = f"{answer}1"
    body = "\n".join(lines + [f"Therefore, the final answer is: $\\boxed{{{answer}}}$."])
    return f"{START}\n{body}\n{END}"


def message_body(model: str | None, text: str, request_bytes: int) -> dict:
    usage = {"input_tokens": request_bytes // 4, "output_tokens": len(text) // 4}
    return {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}


def user_text(params: dict) -> str:
    content = params["messages"][-1]["content"]
    return content if isinstance(content, str) else "".join(b.get("text", "") for b in content)


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients hold a pool of connections, as with the real API
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's delayed ACK
    # (~40 ms a response here), which alone held the benchmark at 0.75 of its bound.
    disable_nagle_algorithm = True
    server: FakeServer

    def log_message(self, *args) -> None:  # quiet: thousands of requests
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for k, v in {"content-type": "application/json", **(headers or {})}.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): nothing to answer

    def _error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"type": "error", "error": {"type": kind, "message": message}}
        self._send(status, json.dumps(body).encode(), headers)

    def _authorized(self) -> bool:
        key = self.server.settings.api_key
        if key is None or key in (self.headers.get("x-api-key"), (self.headers.get("authorization") or "")[7:]):
            return True
        self.server.count("401")
        self._error(401, "authentication_error", "invalid x-api-key")
        return False

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "/_stats":
            return self._send(200, json.dumps(self.server.stats_snapshot()).encode())
        if not self._authorized():
            return None
        m = re.fullmatch(r"/v1/messages/batches/([\w-]+)(/results)?", path)
        batch = self.server.batches.get(m.group(1)) if m else None
        if batch is None:
            return self._error(404, "not_found_error", self.path)
        if m.group(2):
            lines = "".join(json.dumps(r) + "\n" for r in batch["results"])
            return self._send(200, lines.encode(), {"content-type": "application/binary"})
        self._send(200, json.dumps(self.server.batch_object(batch, self.headers.get("host"))).encode())

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        srv, s = self.server, self.server.settings
        if not self._authorized():
            return None
        if self.path.rstrip("/") == "/v1/messages/batches":
            batch = srv.create_batch(json.loads(raw)["requests"])
            return self._send(200, json.dumps(srv.batch_object(batch, self.headers.get("host"))).encode())
        try:
            req = json.loads(raw)
            user = user_text(req)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            srv.count("400")
            return self._error(400, "invalid_request_error", "messages[-1].content is required")
        refusal = next((status for text, status in s.refuse.items() if text in user), None)
        if refusal is not None:  # at once, as the API refuses: nothing is generated
            srv.count(str(refusal))
            return self._error(refusal, *REFUSALS[refusal])
        time.sleep(s.latency_s)
        if s.credit_after is not None and srv.counts.get("ok", 0) >= s.credit_after:
            srv.count("400")  # what Anthropic answers when the balance runs out
            return self._error(400, "invalid_request_error", "Your credit balance is too low to access the "
                               "Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.")
        fault = srv.draw_fault()
        if fault is not None:
            return self._fault(fault)
        text = fake_completion(user, s)
        srv.count("ok", key=hashlib.sha256(user.encode()).hexdigest()[:16])
        if self.path.rstrip("/").endswith("/chat/completions"):
            usage = {"input_tokens": len(raw) // 4, "output_tokens": len(text) // 4}
            body = {"id": "chatcmpl-fake", "object": "chat.completion", "model": req.get("model"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": usage["input_tokens"],
                              "completion_tokens": usage["output_tokens"]}}
        else:
            body = message_body(req.get("model"), text, len(raw))
        self._send(200, json.dumps(body).encode())

    def _fault(self, fault: str) -> None:
        self.server.count(fault)
        if fault == "429":
            self._error(429, "rate_limit_error", "slow down",
                        {"retry-after": f"{self.server.settings.retry_after_s:g}"})
        elif fault == "500":
            self._error(500, "api_error", "internal error")
        elif fault == "529":
            self._error(529, "overloaded_error", "overloaded")
        elif fault == "timeout":
            time.sleep(self.server.settings.timeout_sleep_s)
            self._error(504, "timeout_error", "too late")
        else:
            self._send(200, b'{"id": "msg_fake", "type": "message", "content": [{"type": "te')


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def __init__(self, settings: FakeSettings, port: int = 0):
        super().__init__(("127.0.0.1", port), FakeHandler)
        self.settings = settings
        self._lock = threading.Lock()
        self._rng = random.Random(settings.seed)
        self.counts: dict[str, int] = {}
        self.ok_by_key: dict[str, int] = {}
        self.batches: dict[str, dict] = {}

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed client resets its sockets: expected
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def draw_fault(self) -> str | None:
        with self._lock:
            if self._rng.random() >= self.settings.fault_rate:
                return None
            return self._rng.choice(TRANSPORT_FAULTS)

    def count(self, outcome: str, key: str | None = None) -> None:
        with self._lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            if key is not None:
                self.ok_by_key[key] = self.ok_by_key.get(key, 0) + 1

    def stats_snapshot(self) -> dict:
        with self._lock:
            return {"counts": dict(self.counts), "ok_by_key": dict(self.ok_by_key), "batches": len(self.batches)}

    def create_batch(self, requests: list[dict]) -> dict:
        """Answers every request at once; the batch reports "ended" after `batch_delay_s`. A `fault_rate`
        share of the requests comes back errored (api_error), to be retried in a later batch."""
        results = []
        for r in requests:
            if self.draw_fault() is not None:
                results.append({"custom_id": r["custom_id"], "result": {
                    "type": "errored", "error": {"type": "error", "error": {"type": "api_error", "message": "x"}}}})
                continue
            text = fake_completion(user_text(r["params"]), self.settings)
            body = message_body(r["params"].get("model"), text, len(json.dumps(r["params"])))
            results.append({"custom_id": r["custom_id"], "result": {"type": "succeeded", "message": body}})
        with self._lock:
            batch = {"id": f"msgbatch_fake{len(self.batches):06d}", "created": time.time(), "results": results}
            self.batches[batch["id"]] = batch
        self.count("batch_requests")
        return batch

    def batch_object(self, batch: dict, host: str | None) -> dict:
        ended = time.time() - batch["created"] >= self.settings.batch_delay_s
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(batch["created"]))
        n = len(batch["results"])
        errored = sum(r["result"]["type"] == "errored" for r in batch["results"])
        return {"id": batch["id"], "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "created_at": stamp, "expires_at": stamp, "ended_at": stamp if ended else None,
                "request_counts": {"processing": 0 if ended else n, "succeeded": n - errored if ended else 0,
                                   "errored": errored if ended else 0, "canceled": 0, "expired": 0},
                "results_url": f"http://{host}/v1/messages/batches/{batch['id']}/results" if ended else None}

    def start(self) -> FakeServer:
        """Serves from a daemon thread; returns self, so `with FakeServer(...).start() as srv:` works."""
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        super().__exit__(*exc)


def load_answers(path: str) -> dict[str, str]:
    """problem text -> final answer, from a GSM8K-shape jsonl ({"question", "answer": "... #### N"})."""
    from spot.rectify.problems import final_answer, iter_rows

    return {row["question"]: final_answer(where, row["answer"], "answer") for where, row in iter_rows(path)}


def parse_refusals(ap: argparse.ArgumentParser, specs: list[str]) -> dict[str, int]:
    """{text: status} from `--refuse TEXT=STATUS` (the text may hold "="; the status follows the last one)."""
    refuse = {}
    for spec in specs:
        text, _, status = spec.rpartition("=")
        if not text or not status.isdigit() or int(status) not in REFUSALS:
            ap.error(f"--refuse {spec!r}: expected TEXT=STATUS with STATUS one of {sorted(REFUSALS)}")
        refuse[text] = int(status)
    return refuse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8765,
                    help="8765 is what oracle=fake asks; 0 picks a free port (its URL is printed)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds added to every response")
    ap.add_argument("--fault-rate", type=float, default=0.0)
    ap.add_argument("--content-fault-rate", type=float, default=0.0)
    ap.add_argument("--timeout-sleep", type=float, default=3.0)
    ap.add_argument("--retry-after", type=float, default=0.2)
    ap.add_argument("--batch-delay", type=float, default=0.5, help="seconds a Message Batch stays in progress")
    ap.add_argument("--require-key-env", default=None,
                    help="name of an environment variable holding the key the server demands")
    ap.add_argument("--answers", default=None,
                    help="GSM8K-shape jsonl: lets the fake solve without a reference")
    ap.add_argument("--refuse", action="append", default=[], metavar="TEXT=STATUS",
                    help=f"prompts containing TEXT get HTTP STATUS (one of {sorted(REFUSALS)}); repeatable")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import os

    settings = FakeSettings(latency_s=a.latency, fault_rate=a.fault_rate, content_fault_rate=a.content_fault_rate,
                            timeout_sleep_s=a.timeout_sleep, retry_after_s=a.retry_after,
                            batch_delay_s=a.batch_delay, seed=a.seed,
                            api_key=os.environ[a.require_key_env] if a.require_key_env else None,
                            answers=load_answers(a.answers) if a.answers else {},
                            refuse=parse_refusals(ap, a.refuse))
    with listening(settings, a.port) as srv:
        print(f"fake Anthropic API listening on {srv.url}", flush=True)
        srv.serve_forever()


def listening(settings: FakeSettings, port: int) -> FakeServer:
    """The server on `port`; a port that is taken (another fake server, another program) or not ours to open
    is one line and exit status 2, not a traceback."""
    import sys

    try:
        return FakeServer(settings, port)
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        why = "is taken" if e.errno == errno.EADDRINUSE else "cannot be opened"
        print(f"error: port {port} {why} ({e.strerror}); --port 0 picks a free port and prints its URL: pass it "
              "to rectify.py as oracle.backend.base_url=<URL>", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
