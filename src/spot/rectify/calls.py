"""Stage 3: the Oracle calls, many in flight, each journaled the moment its reply arrives.

A reply that came back (useful or not: no markers, empty, a wrong answer) was paid for, so it is journaled
and never asked again; the filter decides what to do with it. A call that failed for good (the backend raised
`Unavailable` after its retries) is not journaled, so a rerun asks again.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from spot.progress import Progress
from spot.rectify.journal import Journal
from spot.rectify.oracles.base import Oracle, OracleReply
from spot.retry import Unavailable


@dataclass(frozen=True)
class Request:
    key: str  # "rectify:<item id>" or "direct:<problem id>": the journal's key
    kind: str  # "rectify" or "direct"
    problem: str
    answer: str | None = None  # the policy's wrong answer (rectify only)
    reference: str | None = None  # the reference answer, for the prompt variant that shows it


def reply_from_record(rec: dict) -> OracleReply:
    return OracleReply(**{k: v for k, v in rec.items() if k in OracleReply.__dataclass_fields__})


async def _ask(oracle: Oracle, req: Request) -> OracleReply:
    if req.kind == "rectify":
        return await oracle.rectify(req.problem, req.answer or "", req.reference)
    return await oracle.solve(req.problem, req.reference)


async def oracle_stage(requests: list[Request], oracle: Oracle, journal: Journal, workers: int,
                       progress: bool = True) -> dict[str, int]:
    """Asks every request not yet journaled, from `workers` concurrent tasks; returns this run's counts.

    The remote backends cap the calls on the wire themselves (their `max_in_flight`), holding a slot only
    while a request is out; the pipeline runs more workers than that, so that calls asleep in backoff leave
    no slot idle.
    """
    done = {rec["key"] for rec in journal.records}
    pending = [r for r in requests if r.key not in done]
    todo = iter(pending)
    counts = {"calls": 0, "replies": 0, "unavailable": 0,
              "skipped_journaled": sum(r.key in done for r in requests)}
    bar = Progress(len(requests), f"oracle {oracle.name}", unit="calls", enabled=progress)
    bar.update(counts["skipped_journaled"])  # already answered: journaled by an earlier run

    async def worker() -> None:
        for req in todo:  # one shared iterator: each worker takes the next request
            counts["calls"] += 1
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
