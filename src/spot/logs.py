"""Log lines printed once.

Lightning's top package (`import lightning`) gives the `lightning` logger a console handler of its own and
leaves it propagating to the root logger. Under Hydra the root logger already has a console handler (and the
job's log file), so every Lightning info line ("GPU available: ...", "Seed set to 0") printed twice, once in
Lightning's "INFO: ..." shape and once in Hydra's. `lightning_prints_once` drops Lightning's own handler when
the root logger has handlers: Hydra's print the line once, and its log file still records it.
"""

from __future__ import annotations

import logging


def lightning_prints_once() -> None:
    """Call after Hydra configured logging and before a Trainer is made (spot.data does, on import). Without
    root handlers (a library user, a plain script) Lightning's handler is the only one and stays."""
    import lightning  # noqa: F401  (its import is what adds the handler)

    if not logging.getLogger().handlers:
        return
    logger = logging.getLogger("lightning")
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:  # Lightning's console handler, not a file or a user's own
            logger.removeHandler(handler)
