"""The engine interface, the spec a config builds, and the progress bar every engine shows."""

from __future__ import annotations

import hashlib
import importlib
import time
from dataclasses import dataclass, field
from typing import Protocol

from spot.errors import UserError
from spot.progress import Progress


class EngineError(UserError):
    """An engine that cannot run: not installed (the message names the pip command), a model it cannot load,
    a server that cannot be reached or refuses the key."""


class Engine(Protocol):
    name: str
    loads_from_disk: bool  # False: scores an in-memory model (hf); True: needs the weights as a directory or id

    def complete(self, prompts: list[list[int]], sampling, seed: int = 0, progress: bool = True,
                 desc: str = "generate") -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EngineSpec:
    """What `generation=<name>` selects: the engine class (a dotted path) and its options. `open(model)` builds
    the engine for a model (a loaded module for hf, else a directory or hub id)."""

    engine: str
    options: dict = field(default_factory=dict)

    @property
    def cls(self) -> type:
        module, name = self.engine.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def loads_from_disk(self) -> bool:
        return self.cls.loads_from_disk

    def check(self) -> None:
        """Fails now, with the install command, if the engine's package is missing (before any model loads)."""
        check = getattr(self.cls, "check_installed", None)
        if check is not None:
            check()

    def open(self, model, tokenizer) -> Engine:
        return self.cls(model, tokenizer, **self.options)


HF = EngineSpec("spot.engines.hf.HFEngine")  # the default: transformers' generate in this process


def request_seed(seed: int, i: int) -> int:
    """The seed of the i-th prompt of a call: a sample does not depend on how an engine batches, and the N copies
    of a prompt in an avg@N suite are N different samples."""
    return int.from_bytes(hashlib.sha256(f"spot-generate/{seed}/{i}".encode()).digest()[:4], "little")


class TokenRate:
    """Progress over prompts that also shows generated tokens per second (spot.progress: a bar on a terminal,
    a line every 30 s otherwise)."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.progress = Progress(total, desc, unit="prompts", enabled=enabled)
        self.tokens, self.t0 = 0, time.perf_counter()

    def update(self, prompts: int, tokens: int) -> None:
        self.tokens += tokens
        self.progress.update(prompts, tok_s=round(self.tokens / max(1e-9, time.perf_counter() - self.t0)))

    def close(self) -> None:
        self.progress.close()
