"""The Anthropic Oracle through the Message Batches API: half the price, results within 24 hours.

It keeps the per-call Oracle interface, so the pipeline is unchanged: calls that arrive within `gather_s` of
each other are submitted as one batch (up to `batch_size`), and each call's future resolves when its batch
has ended. Resuming without paying twice needs one more journal, the ledger: the moment a batch is created,
its id and its requests' custom ids are appended (fsync'd). A rerun that asks for a request already in a
ledgered batch waits for that batch's result instead of submitting it again. Custom ids are a hash of the
request, so the same request in a rerun has the same id. A request whose batch result is an error, expired
or canceled is retried in a new batch (through the usual retry policy); one refused as invalid is `Rejected`, as
a 400 is in the per-call API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json

import anthropic

from spot.rectify.journal import Journal
from spot.rectify.oracles.anthropic import _STOPS, AnthropicOracle
from spot.rectify.oracles.prompts import Prompt
from spot.rectify.oracles.remote import Completion
from spot.retry import Rejected, Transient


class AnthropicBatchOracle(AnthropicOracle):
    name = "anthropic-batch"
    wire_is_recoverable = True  # a submitted batch is in the ledger: a rerun collects it, nothing is lost
    # how requests are grouped and waited for, and where the batch ids are kept: not what is asked
    SPEED_ONLY = AnthropicOracle.SPEED_ONLY | {"batch_size", "gather_s", "poll_s", "ledger"}

    def __init__(self, ledger: str, batch_size: int = 10_000, gather_s: float = 5.0, poll_s: float = 60.0,
                 **kw):
        super().__init__(**kw)
        self.ledger = Journal(ledger)
        self.batch_size, self.gather_s, self.poll_s = batch_size, gather_s, poll_s
        self._batch_of = {cid: rec["batch_id"] for rec in self.ledger.records for cid in rec["custom_ids"]}
        self._reset()

    def _new_client(self) -> None:
        super()._new_client()
        self._reset()

    def _reset(self) -> None:
        """Per event loop: futures and tasks cannot outlive the loop that made them."""
        self._queue: dict[str, tuple[dict, asyncio.Future]] = {}
        self._waiting: dict[str, list[asyncio.Future]] = {}
        self._pollers: dict[str, asyncio.Task] = {}
        self._flusher: asyncio.Task | None = None

    async def _send(self, prompt: Prompt) -> Completion:
        params = self._request(prompt)
        cid = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:48]
        future = asyncio.get_running_loop().create_future()
        if cid in self._batch_of:  # submitted by this run or an earlier one: wait for that batch
            self._waiting.setdefault(cid, []).append(future)
            self._poll(self._batch_of[cid])
        else:
            self._queue[cid] = (params, future)
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Waits until no call has arrived for `gather_s` (or the batch is full), then submits."""
        while self._queue:
            size = -1
            while size != len(self._queue) and len(self._queue) < self.batch_size:
                size = len(self._queue)
                await asyncio.sleep(self.gather_s)
            cids = list(self._queue)[: self.batch_size]
            taken = {cid: self._queue.pop(cid) for cid in cids}
            try:
                batch = await self._client.messages.batches.create(
                    requests=[{"custom_id": cid, "params": params} for cid, (params, _) in taken.items()])
            except (anthropic.APIError, ValueError) as e:  # nothing was submitted: the calls retry
                for _, future in taken.values():
                    future.set_exception(Transient(f"batch_create_{type(e).__name__}"))
                continue
            self.ledger.append({"batch_id": batch.id, "custom_ids": cids})  # before anything can go wrong
            for cid, (_, future) in taken.items():
                self._batch_of[cid] = batch.id
                self._waiting.setdefault(cid, []).append(future)
            self._poll(batch.id)

    def _poll(self, batch_id: str) -> None:
        if batch_id not in self._pollers or self._pollers[batch_id].done():
            self._pollers[batch_id] = asyncio.create_task(self._collect(batch_id))

    async def _collect(self, batch_id: str) -> None:
        """Polls until the batch has ended, then hands each result to the calls waiting for it."""
        results: dict = {}
        while True:
            try:
                batch = await self._client.messages.batches.retrieve(batch_id)
                if batch.processing_status == "ended":
                    stream = await self._client.messages.batches.results(batch_id)
                    results = {r.custom_id: r.result async for r in stream}
                    break
            except anthropic.NotFoundError:
                break  # an unknown batch (deleted, or another account's): its calls are asked again
            except Exception:  # noqa: BLE001 - a poller that died would leave its calls waiting forever
                pass  # connection trouble, 5xx, a malformed page: the batch keeps running, poll again later
            await asyncio.sleep(self.poll_s)
        for cid, rid in list(self._batch_of.items()):
            if rid == batch_id and cid in self._waiting:
                self._resolve(cid, results.get(cid))

    def _resolve(self, cid: str, result) -> None:
        futures = self._waiting.pop(cid)
        kind = getattr(result, "type", "missing")
        if kind == "succeeded":
            msg, u = result.message, result.message.usage
            text = "".join(b.text for b in msg.content if getattr(b, "type", "") == "text")
            outcome = Completion(text=text, input_tokens=u.input_tokens or 0, output_tokens=u.output_tokens or 0,
                                 cache_read_tokens=getattr(u, "cache_read_input_tokens", 0) or 0,
                                 cache_write_tokens=getattr(u, "cache_creation_input_tokens", 0) or 0,
                                 stop=_STOPS.get(msg.stop_reason or "", msg.stop_reason or ""))
        elif kind == "errored" and getattr(result.error.error, "type", "") == "invalid_request_error":
            outcome = Rejected(400, getattr(result.error.error, "message", ""))  # this request's fault alone
        else:  # errored on the server, expired, canceled, or absent: ask again in a new batch
            self._batch_of.pop(cid, None)
            outcome = Transient(f"batch_{kind}")
        for future in futures:
            if future.done():  # its caller was cancelled
                continue
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    async def aclose(self) -> None:
        for task in [*self._pollers.values(), self._flusher]:
            if task is not None and not task.done():
                task.cancel()
        await super().aclose()
