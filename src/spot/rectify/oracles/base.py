"""The Oracle interface that every backend implements (toy, Anthropic, OpenAI-compatible).

An Oracle has two jobs (docs/METHOD.md, "Data pipeline"):
- `rectify`: given a problem and the policy's wrong answer, return the answer with only its erroneous steps
  fixed, in the policy's own wording and format (the surgical edit, y+);
- `solve`: the "direct" mode, a from-scratch solution in the Oracle's own style (the SFT baseline's data).
Both are async so that the pipeline keeps many calls in flight; a backend with nothing to await just returns.
Every backend subclasses `Oracle`, which also gives the pipeline what it asks of any backend: `settings` (what
the replies depend on, for the journal's manifest), `stats` (attempts and retries by kind, for the report) and
`aclose` (connections released before the event loop ends).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

# Set by the pipeline's Oracle stage for the call a task is making (spot.rectify.oracle_stage): a backend that sends
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


class Oracle(ABC):
    """One backend. A programmatic one (toy, arith) keeps every default: no prompt, no retries, nothing to close."""

    name = "oracle"
    # config keys (oracle.backend.*) that change how fast, how patiently or through which endpoint the Oracle is
    # asked, never what it replies: free to change between reruns of a journaled run
    SPEED_ONLY: frozenset[str] = frozenset()

    @abstractmethod
    async def rectify(self, problem: str, answer: str, reference: str | None = None) -> OracleReply: ...

    @abstractmethod
    async def solve(self, problem: str, reference: str | None = None) -> OracleReply: ...

    @property
    def prompt_digest(self) -> str | None:
        """Changes with the prompt it sends; None for an Oracle that sends none."""
        return None

    def settings(self, config: dict) -> dict:
        """What its replies depend on, given the config it was built from: that config without SPEED_ONLY,
        and its prompt's digest (an edited prompt file changes the replies as surely as a config key)."""
        return {"backend": {k: v for k, v in config.items() if k not in self.SPEED_ONLY},
                "prompts": self.prompt_digest}

    @property
    def stats(self) -> dict[str, int]:
        """Attempts, retries and give-ups by kind since it was made (empty for an Oracle that never retries)."""
        return {}

    async def aclose(self) -> None:  # noqa: B027 - a default, not a gap: most Oracles hold nothing to close
        """Releases what belongs to the running event loop (HTTP connections, pollers); asyncio.run closes it."""
