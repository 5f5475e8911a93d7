"""Stage 3: the Oracle calls, many in flight, each journaled the moment its reply arrives.

A reply that came back (useful or not: no markers, empty, a wrong answer) was paid for, so it is journaled
and never asked again; the filter decides what to do with it. A call that failed for good (the backend raised
`Unavailable` after its retries) is not journaled, so a rerun asks again.

Requests with the same content (kind, problem, answer shown, reference) are asked once: the first request's key
is journaled and every twin reads its reply (`replies_by_key`). GSM8K's training set repeats questions, and a
policy can give one wrong answer twice; the Oracle would be paid for the same reply again.

Every attempt a network backend puts on the wire is also logged in a second journal, `calls` ("on_wire" as it
goes out, "off_wire" when it is over): a request on the wire when its run was killed may have been answered and
billed without a reply to journal, and the report counts those (spot.rectify.report.usage).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass

from spot.progress import Progress
from spot.rectify.journal import Journal
from spot.rectify.oracles.base import WIRE_LOG, Oracle, OracleReply
from spot.retry import Unavailable


@dataclass(frozen=True)
class Request:
    key: str  # "rectify:<item id>" or "direct:<problem id>": the journal's key
    kind: str  # "rectify" or "direct"
    problem: str
    answer: str | None = None  # the policy's wrong answer (rectify only)
    reference: str | None = None  # the reference answer, for the prompt variant that shows it


    @property
    def content(self) -> tuple:
        """What the Oracle is shown: two requests with the same content get the same reply."""
        return (self.kind, self.problem, self.answer, self.reference)


def reply_from_record(rec: dict) -> OracleReply:
    return OracleReply(**{k: v for k, v in rec.items() if k in OracleReply.__dataclass_fields__})


def answering_keys(requests: list[Request], journaled: set[str]) -> dict[tuple, str]:
    """content -> the key whose reply answers it: a journaled key when one of the twins has one (an earlier run
    may have asked a twin other than the first), else the first request's."""
    first: dict[tuple, str] = {}
    for r in requests:
        if r.key in journaled:
            first.setdefault(r.content, r.key)
    for r in requests:
        first.setdefault(r.content, r.key)
    return first


def replies_by_key(requests: list[Request], records: list[dict]) -> dict[str, OracleReply]:
    """Every request's reply, twins included; a request whose content was never answered is absent."""
    journaled = {rec["key"]: reply_from_record(rec) for rec in records}
    answering = answering_keys(requests, set(journaled))
    return {r.key: journaled[answering[r.content]] for r in requests if answering[r.content] in journaled}


async def _ask(oracle: Oracle, req: Request) -> OracleReply:
    if req.kind == "rectify":
        return await oracle.rectify(req.problem, req.answer or "", req.reference)
    return await oracle.solve(req.problem, req.reference)


async def oracle_stage(requests: list[Request], oracle: Oracle, journal: Journal, workers: int,
                       progress: bool = True, calls: Journal | None = None) -> dict[str, int]:
    """Asks every distinct request not yet journaled, from `workers` concurrent tasks; returns this run's
    counts. `calls`, when given, logs the attempts on the wire (the module docstring).

    The remote backends cap the calls on the wire themselves (their `max_in_flight`), holding a slot only
    while a request is out; the pipeline runs more workers than that, so that calls asleep in backoff leave
    no slot idle.
    """
    done = {rec["key"] for rec in journal.records}
    answering = answering_keys(requests, done)
    distinct = [r for r in requests if answering[r.content] == r.key]
    pending = [r for r in distinct if r.key not in done]
    todo = iter(pending)
    counts = {"calls": 0, "replies": 0, "unavailable": 0, "skipped_journaled": len(distinct) - len(pending),
              "twins_asked_once": len(requests) - len(distinct)}
    bar = Progress(len(distinct), f"oracle {oracle.name}", unit="calls", enabled=progress)
    bar.update(counts["skipped_journaled"])  # already answered: journaled by an earlier run
    run = f"{os.getpid()}-{time.time():.3f}"
    log = calls.append if calls is not None else (lambda record: None)

    async def worker() -> None:
        for req in todo:  # one shared iterator: each worker takes the next request
            counts["calls"] += 1
            WIRE_LOG.set(lambda event, key=req.key: log({"run": run, "key": key, "event": event}))
            try:
                reply = await _ask(oracle, req)
            except Unavailable:
                counts["unavailable"] += 1
            else:
                journal.append({"key": req.key, **asdict(reply)})
                counts["replies"] += 1
            bar.update(1, ok=counts["replies"], failed=counts["unavailable"])

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, min(workers, len(pending))))))
    finally:
        bar.close()
        close = getattr(oracle, "aclose", None)
        if close is not None:  # connections belong to this event loop, which asyncio.run is about to close
            await close()
    return counts
