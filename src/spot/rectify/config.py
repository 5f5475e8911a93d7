"""What a rectify run is told (rectify.yaml, checked once): the pipeline runs on it and the report restates it.

Its own module so that the pipeline (which runs the stages) and the report (which summarises them) both read it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spot.errors import check, check_type
from spot.rectify.oracle_stage import STOP_GRACE_S


@dataclass(frozen=True)
class Price:  # USD per million tokens, for the report's cost line
    input: float = 0.0
    output: float = 0.0
    cache_read: float = 0.0
    cache_write: float = 0.0


@dataclass(frozen=True)
class RectifyConfig:
    out_dir: str
    seed: int = 0
    gamma: float = 0.6
    chunk_size: int = 256
    direct: bool = True  # also ask the Oracle for from-scratch solutions (the SFT baseline's data)
    with_reference: bool = False  # show the Oracle the reference answer (the prompt's second variant)
    max_in_flight: int = 64
    price: Price = field(default_factory=Price)
    progress: bool = True
    journal_dir: str | None = None  # default <out_dir>/journal
    retry_rejected: bool = False  # ask again the requests the API refused for good (journaled as rejected)
    stop_grace_s: float = STOP_GRACE_S  # how long a stop waits for the replies on the wire

    def __post_init__(self) -> None:
        check_type(self.gamma, (int, float), "gamma")
        check(0 <= self.gamma <= 1, "gamma", f"must be in [0, 1] (R_LCS is a fraction), got {self.gamma}")
        check(isinstance(self.retry_rejected, bool), "oracle.retry_rejected",
              f"must be true or false, got {self.retry_rejected!r}")
        check_type(self.stop_grace_s, (int, float), "oracle.stop_grace_s")
        check(self.stop_grace_s >= 0, "oracle.stop_grace_s", f"must be at least 0, got {self.stop_grace_s}")
        for key, value in (("chunk_size", self.chunk_size), ("oracle.max_in_flight", self.max_in_flight)):
            check_type(value, int, key)
            check(value >= 1, key, f"must be at least 1, got {value}")
