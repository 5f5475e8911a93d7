"""The optimizer settings (conf/train.yaml `optim`), checked without importing torch or Lightning, so that
train.py rejects a bad value in its first second."""

from __future__ import annotations

from dataclasses import dataclass

from spot.errors import check, check_type


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay (the paper's recipe, docs/METHOD.md "Training recipe")."""

    lr: float = 1e-6
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05
    min_lr_ratio: float = 0.0

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay", "warmup_ratio", "min_lr_ratio"):
            check_type(getattr(self, name), (int, float), f"optim.{name}")
        check(self.lr > 0, "optim.lr", f"must be positive, got {self.lr}")
        check(self.weight_decay >= 0, "optim.weight_decay", f"must be 0 or more, got {self.weight_decay}")
        check(0 <= self.warmup_ratio < 1, "optim.warmup_ratio", f"must be in [0, 1), got {self.warmup_ratio}")
        check(0 <= self.min_lr_ratio <= 1, "optim.min_lr_ratio", f"must be in [0, 1], got {self.min_lr_ratio}")
        check(len(self.betas) == 2 and all(isinstance(b, int | float) and 0 <= b < 1 for b in self.betas),
              "optim.betas", f"must be two numbers in [0, 1), got {self.betas}")
