"""Stage 1: the policy's one sample per problem, in chunks that are each journaled once done.

A chunk is sampled with its own seed, derived from the run's seed and the chunk's index, so a chunk sampled
after a crash comes out exactly as it would have in an uninterrupted run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from spot.chat import ChatFormat
from spot.engines import EngineSpec, Weights
from spot.generation import Sampling, generate
from spot.progress import Progress, heartbeat
from spot.rectify.journal import Journal, JournalError
from spot.rectify.problems import Item

Sampler = Callable[[list[str], int], list[str]]  # (prompts, seed) -> one completion per prompt


class PolicySampler:
    """The policy's samples through the chosen engine (generation=hf|vllm|server), prompts formatted by the
    run's ChatFormat (the one training and evaluation use). The engine is opened on the first call only, so a
    rerun whose samples are all journaled never loads the model."""

    def __init__(self, path: str, dtype: str, chat: ChatFormat, sampling: Sampling, engine: EngineSpec):
        self.path, self.dtype, self.chat, self.sampling, self.spec = path, dtype, chat, sampling, engine
        self._engine = None

    def __call__(self, prompts: list[str], seed: int) -> list[str]:
        if self._engine is None:
            self._engine = self.spec.open(Weights.at(self.path, self.dtype), self.chat.tokenizer)
        return generate(self._engine, self.chat, prompts, self.sampling, seed=seed, progress=False)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None


def chunk_seed(seed: int, chunk: int) -> int:
    digest = hashlib.sha256(f"spot-rectify/sample/{seed}/{chunk}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def sample_stage(items: list[Item], sampler: Sampler, journal: Journal, chunk_size: int, seed: int,
                 progress: bool = True) -> tuple[dict[str, str], int]:
    """({item id: completion}, number sampled in this run). Items that carry a completion are not sampled."""
    completions = {it.id: it.completion for it in items if it.completion is not None}
    todo = [it for it in items if it.completion is None]
    chunks = [todo[s : s + chunk_size] for s in range(0, len(todo), chunk_size)]
    done = {rec["chunk"]: rec for rec in journal.records}
    bar = Progress(len(todo), "sample", unit="prompts", enabled=progress)
    sampled = 0
    for k, chunk in enumerate(chunks):
        ids = [it.id for it in chunk]
        rec = done.get(k)
        if rec is not None and rec["ids"] != ids:
            raise JournalError(f"{journal.path}: chunk {k} holds other problems than this run's; the "
                             "problem set changed, so use a new out_dir")
        if rec is None:
            with heartbeat(bar, generating=f"chunk {k + 1}/{len(chunks)}"):
                texts = sampler([it.prompt for it in chunk], chunk_seed(seed, k))
            rec = {"chunk": k, "ids": ids, "completions": texts}
            journal.append(rec)
            sampled += len(chunk)
        completions.update(zip(rec["ids"], rec["completions"], strict=True))
        bar.update(len(chunk))
    bar.close()
    return completions, sampled
