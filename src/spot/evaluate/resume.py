"""Completions kept as they arrive, so that an evaluation that stops (a server that gives up, a crash, kill -9)
resumes where it stopped: a rerun into the same output directory generates only what is missing.

    <out_dir>/journal/trained.jsonl   the evaluated model's completions
    <out_dir>/journal/base.jsonl      its base model's
    <out_dir>/journal/lock            held while an evaluation runs: a second one on the same directory stops

Each file is a `spot.rectify.journal.Journal` (rectify's sampling and Oracle calls keep theirs the same way): a
record is on disk once appended, and a line torn by a crash is cut off on reopening. Its first record holds the
settings every completion in it depends on (`side_settings`: the weights, the engine and those of its options
that change a completion, the decoding, the seed, the prompt format); a rerun with other settings is refused,
naming what changed. Every later record is one completion under the key of what else changes it (`item_key`:
the problem, the suite's template and budget, and its place in the suite's request, which seeds it), so a
suite added, dropped or cut shorter reuses every completion whose key is unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from spot.chat import ChatFormat
from spot.generation import Sampling
from spot.rectify.journal import Journal, JournalError


def side_settings(weights: str, engine: dict, sampling: Sampling, seed: int, chat: ChatFormat) -> dict:
    """What every completion of one model depends on, by config key, as plain JSON; `engine` is
    EngineSpec.settings(). The batch size only changes how prompts are grouped (and so, with generation=hf,
    which samples are drawn), so a rerun may lower it after running out of memory; budgets are per suite
    (`item_key`)."""
    chat_template = getattr(chat.tokenizer, "chat_template", None) or ""
    settings = {"model weights": weights, **engine, "eval.sampling.temperature": sampling.temperature,
                "eval.sampling.top_p": sampling.top_p, "eval.sampling.top_k": sampling.top_k, "seed": seed,
                "chat template": hashlib.sha256(str(chat_template).encode()).hexdigest()[:16],
                "model.enable_thinking": chat.enable_thinking, "model.problem_template": chat.template}
    return json.loads(json.dumps(settings))  # as it reads back from the file


def item_key(problem: str, template: str | None, max_new_tokens: int, position: int) -> str:
    return hashlib.sha256(json.dumps([problem, template, max_new_tokens, position]).encode()).hexdigest()[:20]


class CompletionJournal:
    """One model's completions on disk: `done` maps an item key to its completion, `add` keeps new ones."""

    def __init__(self, path: str | Path, settings: dict):
        self.journal = Journal(path, group_commit=True)  # fsync off the event loop: replies arrive by the hundred
        head, *rest = self.journal.records or [None]
        if head is None:
            self.journal.append({"settings": settings})
        elif head.get("settings") != settings:
            self.journal.close()
            old = head.get("settings") or {}
            changed = sorted(k for k in old.keys() | settings.keys() if old.get(k) != settings.get(k))
            raise JournalError(f"{self.journal.path} holds completions made with other settings (changed: "
                               f"{', '.join(changed)}); evaluate into another directory (hydra.run.dir=...), or "
                               "delete that file to generate them again")
        self.done = {rec["key"]: rec["completion"] for rec in rest}

    def add(self, suite: str, positions: list[int], keys: list[str], completions: list[str]) -> None:
        for i, key, text in zip(positions, keys, completions, strict=True):
            self.journal.append({"suite": suite, "i": i, "key": key, "completion": text})
            self.done[key] = text

    def close(self) -> None:
        self.journal.close()
