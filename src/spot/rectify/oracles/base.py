"""The Oracle interface that every backend implements (toy, Anthropic, OpenAI-compatible).

An Oracle has two jobs (docs/METHOD.md, "Data pipeline"):
- `rectify`: given a problem and the policy's wrong answer, return the answer with only its erroneous steps
  fixed, in the policy's own wording and format (the surgical edit, y+);
- `solve`: the "direct" mode, a from-scratch solution in the Oracle's own style (the SFT baseline's data).
Both are async so that the pipeline keeps many calls in flight; a backend with nothing to await just returns.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

# Set by the pipeline's Oracle stage for the call a task is making (spot.rectify.calls): a backend that sends
# requests over the network calls it with "on_wire" as an attempt goes out and "off_wire" when it is over, so
# that the requests on the wire when a run is killed (perhaps answered and billed, never journaled) are known.
WIRE_LOG: ContextVar[Callable[[str], None] | None] = ContextVar("spot_oracle_wire_log", default=None)


def wire_event(event: str) -> None:
    log = WIRE_LOG.get()
    if log is not None:
        log(event)


@dataclass
class OracleReply:
    """What one Oracle call produced. `text` is the usable answer (markers stripped), or None with `error`."""

    text: str | None
    raw: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    error: str | None = None


class Oracle(Protocol):
    name: str

    async def rectify(self, problem: str, answer: str, reference: str | None = None) -> OracleReply: ...

    async def solve(self, problem: str, reference: str | None = None) -> OracleReply: ...
