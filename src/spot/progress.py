"""Progress that shows where output goes: a tqdm bar on a terminal, a line every 30 s otherwise.

A job under nohup, SLURM or CI writes to a file, where a bar is one line redrawn in place (or nothing until the
end). There every long stage (scoring, the reference pass, training) prints a plain line at most every
`SPOT_PROGRESS_EVERY_S` seconds (default 30) of work, and one when it ends:

    [eval toy_in_domain] 120/400 prompts (30%)  1523 tok_s  elapsed 0:41  eta 1:35

A stage that waits on something else (a generation server) also calls `tick` on a timer, so that a stall shows
as lines whose count stands still instead of as silence.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm


def every_s() -> float:
    return float(os.environ.get("SPOT_PROGRESS_EVERY_S", "30"))


def on_terminal() -> bool:
    return sys.stderr.isatty()


def clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """`update(n, **shown)` counts n more `unit`s done; `shown` are extra figures (e.g. tok_s=1523)."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", enabled: bool = True):
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.done, self.t0 = 0, time.perf_counter()
        self.last, self.shown = self.t0, {}
        self.bar = tqdm(total=total, desc=desc, unit=unit) if enabled and on_terminal() else None

    def update(self, n: int = 1, **shown) -> None:
        self.done += n
        self.shown.update(shown)
        if self.bar is not None:
            self.bar.update(n)
            if shown:
                self.bar.set_postfix(shown, refresh=False)
        elif self.enabled and self.due_in() == 0:
            self._line()

    def due_in(self) -> float:
        """Seconds until the next line is due (0: now)."""
        return max(0.0, self.last + every_s() - time.perf_counter())

    def tick(self, **shown) -> None:
        """Shows where things stand even when nothing was done since the last call: the bar is redrawn (its
        elapsed time moves on), or a line is printed when one is due."""
        self.shown.update(shown)
        if not self.enabled or self.due_in() > 0:
            return
        if self.bar is None:
            self._line()
            return
        self.last = time.perf_counter()
        self.bar.set_postfix(self.shown, refresh=False)
        self.bar.refresh()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.t0
        parts = [f"[{self.desc}] {self.done}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        parts += [f"{v} {k}" if isinstance(v, str) else f"{v:.4g} {k}" for k, v in self.shown.items()]
        parts.append(f"elapsed {clock(elapsed)}")
        if self.total and 0 < self.done < self.total:
            parts.append(f"eta {clock(elapsed * (self.total - self.done) / self.done)}")
        return "  ".join(parts)

    def _line(self) -> None:
        self.last = time.perf_counter()
        print(self.line(), file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled and self.done:
            self._line()


@contextmanager
def heartbeat(progress: Progress, period_s: float = 1.0, **shown) -> Iterator[None]:
    """Ticks `progress` every `period_s` while the block runs (a line when one is due), for a call that reports
    nothing until it returns: a chunk of 256 prompts of a real model takes minutes on a CPU."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(period_s):
            progress.tick(**shown)

    thread = threading.Thread(target=beat, daemon=True, name="spot-heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
