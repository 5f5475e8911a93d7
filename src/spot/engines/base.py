"""The engine interface, the spec a config builds, and the progress bar every engine shows."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from spot.errors import UserError
from spot.progress import Progress


class EngineError(UserError):
    """An engine that cannot run: not installed (the message names the pip command), a model it cannot load,
    a server that cannot be reached or refuses the key."""


Arrived = Callable[[list[int], list[str]], None]  # (indices into the call's prompts, their completions)


class Engine(Protocol):
    """`complete` returns one completion per prompt, in order. `positions` are the prompts' places in the whole
    request (default 0..n-1), which their seeds come from (`request_seed`): a resumed request that sends only the
    missing prompts passes their original places, so each is sampled as it would have been. `on_done` is called
    as completions arrive (per reply, per batch or per call, as the engine produces them), so that a caller can
    keep them before the call ends."""

    name: str
    loads_from_disk: bool  # what `from_weights` takes: False, the model in memory (hf); True, a directory or id
    transport_options: tuple[str, ...]  # options that change how requests travel, never what is sampled

    def complete(self, prompts: list[list[int]], sampling, seed: int = 0, progress: bool = True,
                 desc: str = "generate", positions: list[int] | None = None,
                 on_done: Arrived | None = None) -> list[str]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Weights:
    """One model as an engine may want it, each form made only when asked: `loaded()`, the model in memory (the
    hf engine), or `directory()`, a directory or hub id to load from (vllm, server). The engine picks (its
    `from_weights`), so a caller describes the model once and never asks which form an engine wants."""

    loaded: Callable[[], object]
    directory: Callable[[], str]

    @classmethod
    def at(cls, path: str, dtype: str = "float32") -> Weights:
        """A model directory or hub id, loaded (onto the GPU when there is one) only for an in-memory engine."""

        def load():
            import torch

            from spot.models import load_model

            model = load_model(path, dtype)
            return model.cuda() if torch.cuda.is_available() else model

        return cls(load, lambda: path)


@dataclass(frozen=True)
class EngineSpec:
    """What `generation=<name>` selects: the engine class (a dotted path) and its options. `open(weights)` builds
    the engine on a model (`Weights`), taken in the form the engine wants."""

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

    def check_installed(self) -> None:
        """EngineError naming the install command when the engine's package is missing."""
        check = getattr(self.cls, "check_installed", None)
        if check is not None:
            check()

    def check(self) -> None:
        """Fails now, before any model loads: a missing package names its install command, an option out of
        range names its key."""
        self.check_installed()
        check_options = getattr(self.cls, "check_options", None)
        if check_options is not None:
            check_options(self.options)

    def settings(self) -> dict:
        """What of this engine changes a completion, by config key: its class and its options, less its
        `transport_options`."""
        skip = getattr(self.cls, "transport_options", ())
        return {"generation": self.engine,
                **{f"generation.options.{k}": v for k, v in sorted(self.options.items()) if k not in skip}}

    def open(self, weights: Weights, tokenizer) -> Engine:
        return self.cls.from_weights(weights, tokenizer, **self.options)


class OnFirstUse:
    """An engine opened by `open_fn` when it is first asked for completions: a rerun that finds every completion
    journaled loads no model and needs no server."""

    def __init__(self, open_fn: Callable[[], Engine]):
        self.open_fn, self.engine = open_fn, None

    def complete(self, *args, **kwargs) -> list[str]:
        if self.engine is None:
            self.engine = self.open_fn()
        return self.engine.complete(*args, **kwargs)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


HF = EngineSpec("spot.engines.hf.HFEngine")  # the default: transformers' generate in this process


def installed_or_hf(engine: str, options: dict | None = None) -> EngineSpec:
    """generation=cpu: `engine` (vLLM on the CPU) where its package is installed, else transformers' generate,
    3-6x slower on a real model's answers here (benchmarks/README.md). One line on stderr says which, so that no
    run is slow without a word."""
    import sys

    spec = EngineSpec(engine, options if options is not None else {})
    try:
        spec.check_installed()
    except EngineError as e:
        print(f"generation=cpu: hf (transformers' generate), since {e}", file=sys.stderr, flush=True)
        return HF
    print(f"generation=cpu: {spec.name} (installed; generation=hf for transformers' generate)", file=sys.stderr,
          flush=True)
    return spec


def request_seeds(seed: int, n: int, positions: list[int] | None = None) -> list[int]:
    """The seeds of a call's n prompts, from their positions in the whole request (default 0..n-1)."""
    return [request_seed(seed, i) for i in (range(n) if positions is None else positions)]


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
        self.running = 0  # tokens of a call still generating (`beat`), replaced by its count when it ends

    def update(self, prompts: int, tokens: int) -> None:
        self.tokens, self.running = self.tokens + tokens, 0
        self.progress.update(prompts, tok_s=self.rate())

    def beat(self, tokens: int) -> None:
        """`tokens` more generated by a call still running: a line is shown when one is due, so a batch that
        takes half an hour (a real model's 1,024 tokens on a CPU) is not half an hour of silence."""
        self.running += tokens
        self.progress.tick(tok_s=self.rate())

    def rate(self) -> int:
        return round((self.tokens + self.running) / max(1e-9, time.perf_counter() - self.t0))

    async def heartbeat(self, **shown: Callable[[], object]) -> None:
        """Until cancelled: shows progress whenever it is due even if nothing arrives (a stalled server), with
        `shown` figures read at each beat (e.g. retries=lambda: n)."""
        while self.progress.enabled:
            await asyncio.sleep(max(0.05, self.progress.due_in()))
            self.progress.tick(tok_s=self.rate(), **{k: f() for k, f in shown.items()})

    def close(self) -> None:
        self.progress.close()
