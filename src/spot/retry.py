"""Retrying remote calls (Oracle APIs, generation servers): backoff on errors and timeouts, and a shared pause
that honours 429s.

The SDKs' own retry loops are switched off (max_retries=0) so that every attempt is counted here and one
rate-limit answer pauses every call in flight, not just the one that received it: retry-after is a statement
about the account, and 64 callers each ignoring it would keep the account throttled.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from spot.errors import UserError

T = TypeVar("T")


class Transient(Exception):
    """A failure worth retrying: `kind` names it for the counters, `retry_after` (seconds) is the server's."""

    def __init__(self, kind: str, retry_after: float | None = None):
        super().__init__(kind)
        self.kind, self.retry_after = kind, retry_after


class RemoteFatal(UserError):
    """A failure no retry can fix (bad key, unknown model, nothing listening): the run stops with this message."""


class Rejected(Exception):
    """The API refused this one request for good (400, 413, a reply that cannot be read however often it is
    asked): asking again gets the same answer, while the other requests are fine. `status` is the HTTP status
    (None when there was none to blame), `message` the API's own words."""

    def __init__(self, status: int | None, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Unavailable(RuntimeError):
    """No reply after every retry (network, 5xx, 429, timeouts): nothing was paid, a rerun asks again.
    `kinds` counts this call's failed attempts by kind."""

    def __init__(self, message: str, kinds: Counter | None = None):
        super().__init__(message)
        self.kinds = kinds or Counter()


def parse_retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms`, `retry-after` as seconds, or `retry-after` as an HTTP date."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when else None


@dataclass
class RetryPolicy:
    max_attempts: int = 8
    backoff_s: float = 1.0  # first delay; doubles per attempt, with full jitter
    max_backoff_s: float = 60.0
    max_retry_after_s: float = 300.0  # never trust a retry-after longer than this
    stats: Counter = field(default_factory=Counter)  # attempts, retries by kind, given_up
    _pause_until: float = 0.0

    def delay(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))

    async def run(self, attempt_fn: Callable[[], Awaitable[T]], slots: asyncio.Semaphore) -> T:
        """Calls `attempt_fn` until it returns, raising Unavailable after `max_attempts` transients.

        A slot of `slots` is held only while a request is on the wire, so calls sleeping in backoff do not
        keep others from using the connection budget.
        """
        kinds: Counter = Counter()
        last = None
        for attempt in range(1, self.max_attempts + 1):
            wait = self._pause_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self.stats["attempts"] += 1
            try:
                async with slots:
                    return await attempt_fn()
            except Transient as e:
                kinds[e.kind] += 1
                last = e.kind
                self.stats[f"retry_{e.kind}"] += 1
                delay = self.delay(attempt)
                if e.retry_after is not None:
                    delay = min(self.max_retry_after_s, e.retry_after)
                    self._pause_until = max(self._pause_until, time.monotonic() + delay)
                if attempt < self.max_attempts:
                    await asyncio.sleep(delay)
        self.stats["given_up"] += 1
        raise Unavailable(f"no reply after {self.max_attempts} attempts (last: {last})", kinds)
