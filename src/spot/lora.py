"""LoRA adapters (peft) on a frozen base: the spec read from model.lora, and how to tell a model that has them.

Kept apart from spot.models so that train.py can check model.lora in its first second, before transformers
and peft are imported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from spot.errors import ConfigError, check, check_type

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoraSpec:
    """model.lora: low-rank adapters (peft) on the frozen base; r=0 trains every weight instead.

    With adapters the reference model is free: it is the same model with its adapters disabled.
    """

    r: int = 0
    alpha: float = 16
    dropout: float = 0.0
    target_modules: str | list[str] = "all-linear"   # every linear layer but the LM head
    merge: bool = True   # also write the merged policy at the end (<run>/policy), beside <run>/adapter
    extra: dict = field(default_factory=dict)   # any other peft.LoraConfig argument

    def __post_init__(self) -> None:
        check_type(self.r, int, "model.lora.r")
        check(self.r >= 0, "model.lora.r", f"must be 0 (no LoRA) or a positive rank, got {self.r}")
        check_type(self.alpha, (int, float), "model.lora.alpha")
        check_type(self.dropout, (int, float), "model.lora.dropout")
        check(0 <= self.dropout < 1, "model.lora.dropout", f"must be in [0, 1), got {self.dropout}")

    @property
    def enabled(self) -> bool:
        return self.r > 0

    def apply(self, model):
        """`model` wrapped by peft with fresh adapters (B = 0: at the start the policy equals its base)."""
        from peft import LoraConfig, get_peft_model

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        config = LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets,
                            task_type="CAUSAL_LM", **self.extra)
        try:
            model = get_peft_model(model, config)
        except ValueError as e:  # e.g. target modules that the model does not have
            raise ConfigError(f"model.lora: {str(e).splitlines()[0][:300]}") from None
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        log.info("LoRA r=%d: %d trainable parameters of %d (%.2f%%)", self.r, trainable, total, 100 * trainable / total)
        return model

    def trainable_parameters(self, model) -> int:
        """Adapter parameters `apply` would add to `model` (counted from its linear layers, e.g. on meta)."""
        if not self.enabled:
            return sum(p.numel() for p in model.parameters())
        from torch import nn

        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        names = None if self.target_modules == "all-linear" else set(self.target_modules)
        return sum(self.r * (m.in_features + m.out_features) for name, m in model.named_modules()
                   if isinstance(m, nn.Linear) and m is not head
                   and (names is None or name.rsplit(".", 1)[-1] in names))


def has_adapters(model) -> bool:
    """A peft model with adapters that can be switched off (the LoRA reference) and merged (the saved policy)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "merge_and_unload")
