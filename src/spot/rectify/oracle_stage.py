"""Stage 3: the Oracle calls, many in flight, each journaled the moment its reply arrives.

A reply that came back (useful or not: no markers, empty, a wrong answer) was paid for, so it is journaled and
never asked again; the filter decides what to do with it. A request the API refused for good, alone (`Rejected`:
too large, invalid, never a readable reply) is journaled in its own journal, `rejected`, with the HTTP status and
the API's words; the filter drops it as "oracle_rejected", and a rerun does not ask it again unless told to
(`retry_rejected`: after the limit was raised or the prompt shortened). A call that failed for good in the
network (`Unavailable` after its retries) is not journaled, so a rerun asks again.

Requests with the same content (kind, problem, answer shown, reference) are asked once: the first request's key
is journaled and every twin reads its reply (`replies_by_key`). GSM8K's training set repeats questions, and a
policy can give one wrong answer twice; the Oracle would be paid for the same reply again.

Every attempt a network backend puts on the wire is also logged in a third journal, `calls` ("on_wire" as it
goes out, "off_wire" when it is over, "cancelled" when the run stopped listening while it was out): a request on
the wire when its run was killed or stopped may have been answered and billed without a reply to journal, and
the report counts those (spot.rectify.report.usage).

A stop (a failure that stops every request: `RemoteFatal` for the account, a full disk; SIGINT or SIGTERM; a
bug) ends the stage cleanly: no request starts after it, the calls on the wire get `grace_s` to come back (their
replies are journaled, so no rerun pays for them again), the rest are cancelled (logged "cancelled"), and the
stop is one line (`OracleStopped`) saying what became of the calls in flight. A second signal cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass

from spot.errors import Stopped, UserError
from spot.progress import Progress
from spot.rectify.journal import Journal
from spot.rectify.oracles.base import WIRE_LOG, Oracle, OracleReply
from spot.retry import Rejected, Unavailable

STOP_GRACE_S = 30.0  # how long a stop waits for the calls on the wire: their replies are paid for


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


def records_by_key(requests: list[Request], records: list[dict]) -> dict[str, dict]:
    """Every request's record (a twin's is the one of the key that answers its content; a key journaled twice
    has its last); a request whose content has none is absent."""
    journaled = {rec["key"]: rec for rec in records}
    answering = answering_keys(requests, set(journaled))
    return {r.key: journaled[answering[r.content]] for r in requests if answering[r.content] in journaled}


def replies_by_key(requests: list[Request], records: list[dict]) -> dict[str, OracleReply]:
    """Every request's reply, twins included; a request whose content was never answered is absent."""
    return {key: reply_from_record(rec) for key, rec in records_by_key(requests, records).items()}


def rejections_by_key(requests: list[Request], records: list[dict], replies: dict[str, OracleReply]
                      ) -> dict[str, dict]:
    """{"status", "message"} of every request refused for good and not answered since (by `retry_rejected`)."""
    return {key: {"status": rec["status"], "message": rec["message"]}
            for key, rec in records_by_key(requests, records).items() if key not in replies}


async def _ask(oracle: Oracle, req: Request) -> OracleReply:
    if req.kind == "rectify":
        return await oracle.rectify(req.problem, req.answer or "", req.reference)
    return await oracle.solve(req.problem, req.reference)


class OracleStopped(UserError):
    """The Oracle stage stopped before its end; the message says why and what became of the calls in flight."""


class OracleInterrupted(Stopped, OracleStopped):
    """The Oracle stage stopped by SIGINT or SIGTERM: reported as every signalled stop is (spot.errors.Stopped)."""


class _Stopping(Exception):
    """Raised instead of putting a request on the wire once the stage is stopping."""


@dataclass
class OracleJournals:
    """Where the Oracle stage writes; a benchmark may keep only the replies."""

    replies: Journal  # every reply that came back: paid for
    rejected: Journal | None = None  # the requests refused for good, with their status and the API's words
    calls: Journal | None = None  # the attempts on the wire (the module docstring)


async def oracle_stage(requests: list[Request], oracle: Oracle, journals: OracleJournals, workers: int,
                       progress: bool = True, retry_rejected: bool = False,
                       grace_s: float = STOP_GRACE_S) -> dict[str, int]:
    """Asks every distinct request not yet journaled (a rejected one again only with `retry_rejected`), from
    `workers` concurrent tasks; returns this run's counts, or raises `OracleStopped` (the module docstring).

    The remote backends cap the calls on the wire themselves (their `max_in_flight`), holding a slot only
    while a request is out; the pipeline runs more workers than that, so that calls asleep in backoff leave
    no slot idle.
    """
    done = {rec["key"] for rec in journals.replies.records}
    if journals.rejected is not None and not retry_rejected:
        done |= {rec["key"] for rec in journals.rejected.records}
    answering = answering_keys(requests, done)
    distinct = [r for r in requests if answering[r.content] == r.key]
    pending = [r for r in distinct if r.key not in done]
    bar = Progress(len(distinct), f"oracle {oracle.name}", unit="calls", enabled=progress)
    bar.update(len(distinct) - len(pending))  # already answered: journaled by an earlier run
    stage = _Stage(oracle, journals, pending, bar)
    stage.counts.update(skipped_journaled=len(distinct) - len(pending),
                        twins_asked_once=len(requests) - len(distinct))
    try:
        await stage.run(max(1, min(workers, len(pending))), grace_s)
    finally:
        bar.close()
        await oracle.aclose()  # connections belong to this event loop, which asyncio.run is about to close
    return stage.counts


class _Stage:
    """One run of the Oracle stage: the workers that share the requests, their counts, and how they stop."""

    def __init__(self, oracle: Oracle, journals: OracleJournals, pending: list[Request], bar: Progress):
        self.oracle, self.journals, self.bar = oracle, journals, bar
        self.todo = iter(pending)  # one shared iterator: each worker takes the next request
        self.counts = {"calls": 0, "replies": 0, "rejected": 0, "unavailable": 0}
        self.run_id = f"{os.getpid()}-{time.time():.3f}"
        self.on_wire: set[asyncio.Task] = set()  # workers whose request is out
        self.stopping, self.signal, self.failure = False, None, None
        self.lost_on_wire = self.unjournaled = 0  # calls whose reply, perhaps paid, was lost: see stop_error

    async def run(self, n_workers: int, grace_s: float) -> None:
        tasks = [asyncio.create_task(self.worker()) for _ in range(n_workers)]
        with self.signals_stop():
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                cancelled = False
            except asyncio.CancelledError:  # a signal (signals_stop), or whoever runs the stage
                cancelled = True
            if not cancelled and self.failure is None:
                return
            await self.wind_down(tasks, grace_s)
        raise self.stop_error(self.failure)

    async def worker(self) -> None:
        try:
            await self.ask_all()
        except Exception as e:
            if self.failure is None and not self.stopping:  # the cause, which the stop names: others follow from it
                self.failure = e
            raise

    async def ask_all(self) -> None:
        while not self.stopping and (req := next(self.todo, None)) is not None:
            self.counts["calls"] += 1
            WIRE_LOG.set(lambda event, key=req.key: self.log(key, event))
            try:
                reply = await _ask(self.oracle, req)
            except _Stopping:
                return
            except Unavailable:
                self.counts["unavailable"] += 1
            except Rejected as e:
                self.reject(req.key, e)
            else:
                self.journal_reply(req.key, reply)
            self.bar.update(1, ok=self.counts["replies"], rejected=self.counts["rejected"],
                            failed=self.counts["unavailable"])

    def journal_reply(self, key: str, reply: OracleReply) -> None:
        try:
            self.journals.replies.append({"key": key, **asdict(reply)})
        except Exception:
            self.unjournaled += 1  # paid and lost: the next report counts it if the calls journal can say so
            with contextlib.suppress(Exception):
                self.log(key, "unjournaled")
            raise
        self.counts["replies"] += 1

    def reject(self, key: str, error: Rejected) -> None:
        if self.journals.rejected is not None:
            self.journals.rejected.append({"key": key, "status": error.status, "message": error.message})
        self.counts["rejected"] += 1

    def log(self, key: str, event: str) -> None:
        """The backend's wire events for `key`'s call: tracked (who is on the wire, which calls lost their
        reply there) and journaled. Once stopping, no attempt may go out."""
        task = asyncio.current_task()
        if event == "on_wire":
            if self.stopping:
                raise _Stopping
            self.on_wire.add(task)
        else:
            self.on_wire.discard(task)
            if event == "cancelled":
                self.lost_on_wire += 1
        if self.journals.calls is None:
            return
        try:
            self.journals.calls.append({"run": self.run_id, "key": key, "event": event})
        except Exception:
            if event == "off_wire":  # the failure replaces the attempt's outcome, a reply perhaps
                self.lost_on_wire += 1
            raise

    async def wind_down(self, tasks: list[asyncio.Task], grace_s: float) -> None:
        """Workers off the wire (in backoff, waiting for a slot) are cancelled now; those on it get `grace_s`
        for their reply, then are cancelled too. Cancelled again meanwhile (a second signal): all at once."""
        self.stopping = True
        for task in tasks:
            if task not in self.on_wire:
                task.cancel()
        try:
            await asyncio.wait(tasks, timeout=grace_s)
        except asyncio.CancelledError:
            pass
        for task in tasks:
            task.cancel()  # a finished task ignores it
        await asyncio.gather(*tasks, return_exceptions=True)  # every outcome retrieved: no stray tracebacks

    @contextlib.contextmanager
    def signals_stop(self):
        """SIGINT and SIGTERM cancel the stage's task, which winds it down instead of dying with calls in
        flight; the handlers they had are restored after. Only the main thread can set them."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop, task = asyncio.get_running_loop(), asyncio.current_task()
        before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def stop(sig: signal.Signals) -> None:
            self.signal = sig.name
            task.cancel()

        for sig in before:
            loop.add_signal_handler(sig, stop, sig)
        try:
            yield
        finally:
            for sig, handler in before.items():
                loop.remove_signal_handler(sig)
                if handler is not None:
                    signal.signal(sig, handler)

    def stop_error(self, failure: BaseException | None) -> BaseException:
        """What the stop raises: a bug keeps its own exception (and traceback), a cancellation by the caller
        stays one; a failure the user can fix, or a signal, becomes one line with the calls in flight."""
        if failure is not None and not isinstance(failure, UserError):
            return failure
        if failure is None and self.signal is None:
            return asyncio.CancelledError()
        settled = [f"{self.counts['replies']} replies journaled this run"]
        if self.lost_on_wire:
            settled.append(f"{self.lost_on_wire} calls on the wire left without their reply (perhaps paid: the next "
                           "report counts them in oracle_usage.calls_lost_in_flight)")
        if self.unjournaled:
            settled.append(f"{self.unjournaled} replies arrived but could not be journaled (paid; asked again by "
                           "the rerun)")
        if failure is not None:
            return OracleStopped(f"{failure}; the Oracle stage stopped with {', '.join(settled)}")
        return OracleInterrupted(f"{self.signal}: the Oracle stage ended with {', '.join(settled)}; rerun the "
                                 "same command to resume", signal.Signals[self.signal])
