"""What the API-backed Oracles share: the SPoT prompt, bounded concurrency, retries, reply parsing.

A backend implements `_send(prompt) -> Completion`, raising `Transient` for what is worth retrying, `Rejected`
for a refusal of this one request (too large, invalid: `PER_REQUEST`) and `RemoteFatal` for what stops every
request (a bad key, no credit, an unknown model). A reply that arrived is returned as an `OracleReply` even when
it is useless (no markers, cut short): it was paid for, so the pipeline journals it and the filter records why
it dropped. A request whose every attempt came back unreadable is `Rejected` too: asking again would not help.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from spot.rectify.oracles.base import Oracle, OracleReply, wire_event
from spot.rectify.oracles.prompts import Prompt, Prompts, strip_markers
from spot.retry import Rejected, RetryPolicy, Unavailable

# the HTTP clients log every request at INFO: thousands of lines that bury the progress bar and the report
for _name in ("httpx", "httpx2", "httpcore", "httpcore2"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# statuses that refuse one request for its content (invalid, 413 too large, unprocessable); the rest of the 4xx
# are about the account or the endpoint, and every other request would get them too
PER_REQUEST = frozenset({400, 413, 422})


@dataclass
class Completion:
    """One API response, backend-neutral."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    stop: str = ""  # "end", "max_tokens", "refusal", ...
    error: str | None = None  # set when the API answered but not with a completion (e.g. bad request)


class RemoteOracle(Oracle):
    name = "remote"
    # how many calls at once, how long and how often to wait, and the endpoint (a proxy that moved): a rerun may
    # change them and keep its journaled replies
    SPEED_ONLY = frozenset({"max_in_flight", "timeout_s", "max_attempts", "backoff_s", "max_backoff_s", "base_url"})
    wire_is_recoverable = False  # a request on the wire at a kill is lost (the batch API's are not: by id)

    def __init__(self, max_in_flight: int = 64, prompts_dir: str | None = None, max_attempts: int = 8,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0):
        self.max_in_flight = max_in_flight
        self.prompts = Prompts(prompts_dir)
        self.policy = RetryPolicy(max_attempts=max_attempts, backoff_s=backoff_s, max_backoff_s=max_backoff_s)
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def prompt_digest(self) -> str | None:
        return self.prompts.digest

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.policy.stats)

    def _bind_loop(self) -> None:
        """Semaphore and HTTP client belong to one event loop; a new `asyncio.run` gets fresh ones."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._slots = loop, asyncio.Semaphore(self.max_in_flight)
            self._new_client()

    def _new_client(self) -> None:
        raise NotImplementedError

    async def _send(self, prompt: Prompt) -> Completion:
        raise NotImplementedError

    async def _ask(self, prompt: Prompt) -> OracleReply:
        self._bind_loop()

        async def attempt() -> Completion:  # runs holding a slot: this request is on the wire
            if self.wire_is_recoverable:
                return await self._send(prompt)
            wire_event("on_wire")
            ended = "cancelled"  # unless _send ends: the caller stopped listening, perhaps after it was billed
            try:
                completion = await self._send(prompt)
                ended = "off_wire"
                return completion
            except Exception:
                ended = "off_wire"
                raise
            finally:
                wire_event(ended)

        try:
            c = await self.policy.run(attempt, self._slots)
        except Unavailable as e:
            if set(e.kinds) == {"malformed"}:  # answered every time, never readably: the request's, not the wire's
                raise Rejected(None, f"no readable reply in {e.kinds['malformed']} attempts") from None
            raise
        usage = dict(input_tokens=c.input_tokens, output_tokens=c.output_tokens,
                     cache_read_tokens=c.cache_read_tokens, cache_write_tokens=c.cache_write_tokens)
        if c.error is not None:
            return OracleReply(text=None, raw=c.text, error=c.error, **usage)
        if c.stop in ("max_tokens", "refusal"):
            return OracleReply(text=None, raw=c.text, error=c.stop, **usage)
        text, error = strip_markers(c.text)
        return OracleReply(text=text, raw=c.text, error=error, **usage)

    async def rectify(self, problem: str, answer: str, reference: str | None = None) -> OracleReply:
        return await self._ask(self.prompts.build("rectify", problem, answer, reference))

    async def solve(self, problem: str, reference: str | None = None) -> OracleReply:
        return await self._ask(self.prompts.build("direct", problem, None, reference))
