"""Shared fixtures: a micro toy model saved like a real one, and small toy data files."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def micro_model_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-wide Qwen3 character model, saved with save_pretrained (random weights)."""
    from spot.toy.model import build_model, build_tokenizer

    out = tmp_path_factory.mktemp("micro-model")
    tok = build_tokenizer()
    model = build_model(tok, hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


def corrupt(solution: str, rng: random.Random) -> str:
    """A wrong answer in the house style: one step's result is off by a few."""
    lines = solution.split("\n")
    k = rng.randrange(len(lines) - 1)
    head, result = lines[k].rsplit("=", 1)
    lines[k] = f"{head}={int(result) + rng.choice([-3, -1, 1, 2, 10])}"
    return "\n".join(lines)


def write_toy_files(directory: Path, n: int = 24, seed: int = 0) -> dict[str, Path]:
    """pairs.jsonl (y+ = correct, y- = corrupted), rft.jsonl and direct.jsonl for the toy world."""
    from spot.toy.tasks import IN_DOMAIN, make_problem, split_rng

    rng = split_rng(seed, "fixture")
    directory.mkdir(parents=True, exist_ok=True)
    paths = {k: directory / f"{k}.jsonl" for k in ("pairs", "rft", "direct")}
    with paths["pairs"].open("w") as fp, paths["rft"].open("w") as fr, paths["direct"].open("w") as fd:
        for i in range(n):
            p = make_problem(rng, IN_DOMAIN)
            sol = p.solution()
            fp.write(json.dumps({"prompt": p.text, "chosen": sol, "rejected": corrupt(sol, rng), "id": i}) + "\n")
            fr.write(json.dumps({"prompt": p.text, "completion": sol, "id": i}) + "\n")
            fd.write(json.dumps({"prompt": p.text, "completion": p.direct_solution(), "id": i}) + "\n")
    return paths


@pytest.fixture
def toy_files(tmp_path) -> dict[str, Path]:
    return write_toy_files(tmp_path / "data")
