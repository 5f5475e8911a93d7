"""How close the Oracle stage comes to its concurrency bound, against the local fake Claude.

    python benchmarks/bench_oracle.py                        # 200 ms latency, 64 in flight: bound 320 calls/s
    python benchmarks/bench_oracle.py --calls 5000 --fault-rate 0.2

The fake server runs in its own process (as the real API would be elsewhere), so the client measured here
does not share its interpreter. Each row runs the pipeline's real Oracle stage (`oracle_stage`: workers,
journal with group-commit fsync, progress accounting) on fresh problems:
    null oracle   asyncio.sleep(latency) instead of HTTP: the pipeline's own ceiling
    anthropic     AnthropicOracle through the anthropic SDK (AsyncAnthropic), the production path
    openai        OpenAICompatOracle over plain httpx
    +faults       the same with --fault-rate of requests failing (429 with retry-after, 500, 529, timeouts,
                  malformed bodies), every one retried until it succeeds
bound = in_flight / latency; ratio = calls/s / bound. client ms/call is this process's CPU per call.
With faults the plain bound does not hold by design: a timeout holds its slot for the client's 1 s timeout
(5x a normal call) and every 429 pauses all calls for its retry-after (0.05 s), as the real API asks.
At 64 in flight the anthropic SDK needs ~2-2.5 ms of CPU a call, i.e. most of a core at 320 calls/s: on a
machine whose cores are busy with other work the SDK rows fall short of the bound by that much.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from spot.rectify.journal import Journal
from spot.rectify.oracle_stage import OracleJournals, Request, oracle_stage
from spot.rectify.oracles.base import Oracle, OracleReply


class NullOracle(Oracle):
    """Replies after `latency` seconds with no I/O: what the pipeline alone can sustain."""

    name = "null"

    def __init__(self, latency: float, max_in_flight: int):
        self.latency, self.max_in_flight, self._slots = latency, max_in_flight, None

    async def rectify(self, problem: str, answer: str, reference: str | None = None) -> OracleReply:
        self._slots = self._slots or asyncio.Semaphore(self.max_in_flight)
        async with self._slots:
            await asyncio.sleep(self.latency)
        return OracleReply(text=f"fixed: {answer}", raw="")

    async def solve(self, problem: str, reference: str | None = None) -> OracleReply:
        raise NotImplementedError("the benchmark asks rectify calls only")


def start_server(latency: float, fault_rate: float, key: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "BENCH_KEY": key}
    cmd = [sys.executable, "-m", "spot.rectify.oracles.fake_server", "--port", "0", "--latency", str(latency),
           "--fault-rate", str(fault_rate), "--retry-after", "0.05", "--timeout-sleep", "3",
           "--require-key-env", "BENCH_KEY"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "fake Anthropic API listening on http://127.0.0.1:PORT"
    return proc, line.strip().rsplit(" ", 1)[-1]


def make_oracle(kind: str, url: str, args) -> Oracle:
    common = dict(max_in_flight=args.in_flight, max_attempts=30, backoff_s=0.05, max_backoff_s=0.5)
    if kind == "null":
        return NullOracle(args.latency, args.in_flight)
    if kind == "anthropic":
        from spot.rectify.oracles.anthropic import AnthropicOracle

        return AnthropicOracle(model="fake", base_url=url, timeout_s=1.0, **common)
    from spot.rectify.oracles.openai_compatible import OpenAICompatOracle

    return OpenAICompatOracle(model="fake", base_url=f"{url}/v1", timeout_s=1.0, api_key_env="BENCH_KEY",
                              **common)


def measure(kind: str, url: str, args, tag: str) -> dict:
    oracle = make_oracle(kind, url, args)
    requests = [Request(f"rectify:{tag}-{i}", "rectify", f"Problem {tag} {i}: what is {i} + 1?",
                        f"{i} + 1 = {i + 2}\nA: {i + 2}", str(i + 1)) for i in range(args.calls)]
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "oracle.jsonl", group_commit=True)
        t0, c0 = time.perf_counter(), time.process_time()
        counts = asyncio.run(oracle_stage(requests, oracle, OracleJournals(journal), 4 * args.in_flight,
                                          progress=False))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        journal.close()
        assert counts["replies"] == args.calls and len(journal.records) == args.calls, counts
    stats = oracle.stats
    return {"calls": args.calls, "seconds": seconds, "rate": args.calls / seconds,
            "cpu_ms": 1000 * cpu / args.calls, "attempts": stats.get("attempts", args.calls)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--fault-rate", type=float, default=0.2)
    ap.add_argument("--backends", default="null,anthropic,openai")
    args = ap.parse_args()
    os.environ["BENCH_KEY"] = os.environ["ANTHROPIC_API_KEY"] = key = "sk-bench-not-a-real-key"
    bound = args.in_flight / args.latency
    print(f"{args.in_flight} in flight, {args.latency * 1000:.0f} ms latency: bound {bound:.0f} calls/s; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'backend':<22}{'calls':>7}{'attempts':>10}{'seconds':>9}{'calls/s':>9}{'bound':>7}{'ratio':>7}"
          f"{'client ms/call':>16}")
    for fault_rate in (0.0, args.fault_rate):
        server, url = start_server(args.latency, fault_rate, key)
        try:
            for kind in args.backends.split(","):
                if kind == "null" and fault_rate > 0:
                    continue
                r = measure(kind, url, args, f"{kind}-{fault_rate}")
                name = kind + (f" +{fault_rate:.0%} faults" if fault_rate else "")
                print(f"{name:<22}{r['calls']:>7}{r['attempts']:>10}{r['seconds']:>9.2f}{r['rate']:>9.1f}"
                      f"{bound:>7.0f}{r['rate'] / bound:>7.2f}{r['cpu_ms']:>16.2f}", flush=True)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
