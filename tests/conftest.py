"""Shared fixtures: a micro toy model saved like a real one, small toy data files, and train.py's run in this
process (`train_here`)."""

from __future__ import annotations

import copy
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


def train_here(cwd: Path, *overrides: str) -> dict:
    """What `python train.py <overrides>` run in `cwd` does, in this process: the config composed from conf/ as
    Hydra composes it for train.py, then `spot.run.run` into its hydra.run.dir (relative to `cwd`). Returns the
    metrics. Tests that need a process of their own (signals, kill -9, DDP, sweeps, exit codes) run train.py."""
    import torch
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict, read_write

    from spot.run import run

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    threads, where = torch.get_num_threads(), os.getcwd()
    out_dir, choices = str(Path(cwd, cfg.hydra.run.dir).resolve()), dict(cfg.hydra.runtime.choices)
    with read_write(cfg.hydra.runtime):  # what Hydra fills in when it starts a job
        cfg.hydra.runtime.output_dir, cfg.hydra.runtime.cwd = out_dir, str(Path(cwd).resolve())
    HydraConfig.instance().set_config(cfg)  # ${hydra:runtime...} in the config resolves as under train.py
    try:
        job = copy.deepcopy(cfg)
        with read_write(job), open_dict(job):
            del job["hydra"]  # as Hydra hands the job its config
        record = Path(out_dir) / ".hydra"  # what Hydra writes into a run directory (evaluate.py reads it)
        record.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(job, record / "config.yaml")
        OmegaConf.save(OmegaConf.masked_copy(cfg, "hydra"), record / "hydra.yaml")
        OmegaConf.save(OmegaConf.create(list(overrides)), record / "overrides.yaml")
        os.chdir(cwd)
        return run(job, out_dir, choices)
    finally:
        os.chdir(where)
        torch.set_num_threads(threads)
        HydraConfig.instance().cfg = None
