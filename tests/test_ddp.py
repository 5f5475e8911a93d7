"""train.py under two DDP processes on the CPU (trainer=ddp_cpu, gloo), run as a user runs it.

Four runs on one micro model and 32 training pairs, shared by the tests (module-scoped fixtures):
  ddp      two processes, 4 pairs each a step, 2 epochs (8 steps)
  single   one process, 8 pairs a step, 2 epochs: the same global batches
  first    ddp, stopped after epoch 1 as an interrupted job is (the 2-epoch schedule)
  resumed  ddp, from first's last.ckpt with trainer.max_epochs=2
Every rank writes what it trained on through tests/ddp_probe.py (probe_rank<r>.json in its run dir).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import write_toy_files
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_TRAIN, PER_RANK = 32, 4  # 33 rows, 1 held out for val (val_fraction 0.05)
TINY_EVAL = ["eval.suites.toy_in_domain.n=6", "eval.suites.toy_ood.n=3", "eval.suites.toy_prior.n=3",
             "eval.sampling.batch_size=8"]
N_SAMPLES = 6 + 3 + 3 * 3  # three prior suites of 3


def train(cwd: Path, run: str, *overrides: str, stop_after_epochs: int | None = None) -> subprocess.CompletedProcess:
    """`python train.py ... hydra.run.dir=<run>` with the probe writing into <cwd>/<run>."""
    probe = f"{{_target_: ddp_probe.RankProbe, out_dir: '{cwd / run}'"
    probe += f", stop_after_epochs: {stop_after_epochs}}}" if stop_after_epochs else "}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run}", f"+eval.callbacks=[{probe}]",
           "pref_lr=1e-2", "trainer.max_epochs=2", "trainer.log_every_n_steps=1", *TINY_EVAL, *overrides]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


def probes(run: Path) -> list[dict]:
    return [json.loads((run / f"probe_rank{r}.json").read_text()) for r in range(2)
            if (run / f"probe_rank{r}.json").exists()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, micro_model_dir) -> dict:
    """{name: (run dir, completed process)} for the four runs; all in one working directory (one base cache)."""
    cwd = tmp_path_factory.mktemp("ddp")
    data = write_toy_files(cwd / "data", n=N_TRAIN + 1)["pairs"]
    common = [f"model.path={micro_model_dir}", f"data.path={data}"]
    ddp = [*common, "trainer=ddp_cpu", f"data.batch_size={PER_RANK}"]
    out = {"ddp": train(cwd, "ddp", *ddp, "logger=wandb"),
           "single": train(cwd, "single", *common, f"data.batch_size={2 * PER_RANK}", "logger=csv"),
           "first": train(cwd, "first", *ddp, "logger=csv", stop_after_epochs=1)}
    out["resumed"] = train(cwd, "resumed", *ddp, "logger=csv", f"ckpt_path={cwd / 'first/checkpoints/last.ckpt'}")
    return {"cwd": cwd, **{k: (cwd / k, proc) for k, proc in out.items()}}


def steps_of(probe: dict, epoch: int | None = None) -> list[dict]:
    return [s for s in probe["steps"] if epoch is None or s["epoch"] == epoch]


def test_reward_shift_is_the_same_on_both_ranks_and_in_one_process(runs):
    ranks, (single,) = probes(runs["ddp"][0]), probes(runs["single"][0])
    assert [p["rank"] for p in ranks] == [0, 1] and all(p["world_size"] == 2 for p in ranks)
    assert single["world_size"] == 1
    n_steps = 2 * N_TRAIN // (2 * PER_RANK)
    assert len(steps_of(ranks[0])) == len(steps_of(ranks[1])) == len(steps_of(single)) == n_steps
    # the same global batches: step k's two shards are step k's batch of the single process
    for a, b, s in zip(steps_of(ranks[0]), steps_of(ranks[1]), steps_of(single)):
        assert len(a["index"]) == len(b["index"]) == PER_RANK
        assert sorted(a["index"] + b["index"]) == sorted(s["index"])
    # all-reduced statistics: bit for bit the same on the two ranks, every step
    assert [s["shift"] for s in steps_of(ranks[0])] == [s["shift"] for s in steps_of(ranks[1])]
    assert ranks[0]["shift"] == ranks[1]["shift"]
    assert ranks[0]["shift"]["count"] == single["shift"]["count"] == 2 * 2 * N_TRAIN  # chosen + rejected, 2 epochs
    # and the single process's, up to rounding: the float32 gradient all-reduce sums in another order than one
    # batch does, and Adam's first steps magnify that (seen: 1e-6 at most, on shifts of about 0.1)
    assert [s["shift"] for s in steps_of(ranks[0])] == pytest.approx([s["shift"] for s in steps_of(single)],
                                                                     rel=1e-3, abs=1e-6)
    assert abs(ranks[0]["shift"]["value"]) > 1e-3  # the policy moved: the comparison is not 0 == 0
    # a step's loss is its rank's mean; the two ranks' mean is the single process's batch mean
    for a, b, s in zip(steps_of(ranks[0]), steps_of(ranks[1]), steps_of(single)):
        assert (a["loss"] + b["loss"]) / 2 == pytest.approx(s["loss"], rel=1e-4)
    # what is logged is the global batch's (every step's metrics are averaged over the ranks), as in one process
    logged = [[r["train/loss"] for r in map(json.loads, (runs[k][0] / "train_log.jsonl").read_text().splitlines())
               if "train/loss" in r] for k in ("ddp", "single")]
    assert len(logged[0]) == n_steps and logged[0] == pytest.approx(logged[1], rel=1e-4)
    # the reward shift logged and checkpointed is the probes' value
    metrics = json.loads((runs["ddp"][0] / "metrics.json").read_text())
    assert metrics["train"]["train/reward_shift"] == pytest.approx(ranks[0]["shift"]["value"], rel=1e-6)
    state = torch.load(runs["ddp"][0] / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert state["reward_shift.value"].item() == ranks[0]["shift"]["value"]
    a, b = (load_file(runs[k][0] / "policy" / "model.safetensors") for k in ("ddp", "single"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3  # seen: 2.5e-5; a step moves a weight 1e-2


def test_each_pair_is_seen_once_an_epoch_across_ranks_in_a_new_order(runs):
    ranks = probes(runs["ddp"][0])
    orders = []
    for epoch in (0, 1):
        shards = [[i for s in steps_of(p, epoch) for i in s["index"]] for p in ranks]
        assert sorted(shards[0] + shards[1]) == list(range(N_TRAIN))  # once each, none twice, none left out
        assert len(shards[0]) == len(shards[1]) == N_TRAIN // 2
        orders.append([sorted(a["index"] + b["index"]) for a, b in zip(steps_of(ranks[0], epoch),
                                                                        steps_of(ranks[1], epoch))])
    assert orders[0] != orders[1]  # set_epoch reached the order: epoch 2 is not epoch 1 again


def test_metrics_policy_and_evaluation_are_written_once_by_rank_0(runs):
    run, proc = runs["ddp"]
    cwd = runs["cwd"]
    ranks = probes(run)
    assert [(p["scored_base"], p["scored_trained"]) for p in ranks] == [(True, True), (False, False)]
    metrics = json.loads((run / "metrics.json").read_text())
    assert not metrics["base"]["cached"] and metrics["steps"] == 2 * N_TRAIN // (2 * PER_RANK)
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    keys = [(r["suite"], r["question"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)) == N_SAMPLES
    assert proc.stdout.count("| Base |") == 1 and proc.stdout.count("| bco |") == 1  # rank 1 shares stdout
    # one run dir: rank 1 was re-launched into rank 0's, with no second .hydra/ and no outputs/<date>/
    assert sorted(p.relative_to(cwd).as_posix() for p in cwd.rglob("metrics.json")) == [
        "ddp/metrics.json", "first/metrics.json", "resumed/metrics.json", "single/metrics.json"]
    assert [p.relative_to(run).as_posix() for p in run.rglob(".hydra")] == [".hydra"]
    assert not (cwd / "outputs").exists()
    assert [p.relative_to(run).as_posix() for p in run.rglob("model.safetensors")] == ["policy/model.safetensors"]
    assert len(list((run / "wandb").glob("offline-run-*"))) == 1
    assert (run / "train_ddp_process_1.log").exists()  # rank 1's log, in the same run dir


def test_resume_under_two_processes_continues_the_uninterrupted_run(runs):
    full, first, resumed = (probes(runs[k][0]) for k in ("ddp", "first", "resumed"))
    for rank in (0, 1):
        assert steps_of(first[rank]) == steps_of(full[rank], 0)  # the interrupted run is the full run's epoch 1
        got, want = steps_of(resumed[rank]), steps_of(full[rank], 1)
        assert [s["index"] for s in got] == [s["index"] for s in want]  # epoch 2's order, restored from (seed, 1)
        assert [s["loss"] for s in got] == pytest.approx([s["loss"] for s in want], abs=1e-6)
        assert [s["shift"] for s in got] == pytest.approx([s["shift"] for s in want], abs=1e-9)
        assert resumed[rank]["shift"] == pytest.approx(full[rank]["shift"], abs=1e-9)
        assert resumed[rank]["global_step"] == full[rank]["global_step"]
    a, b = (load_file(runs[k][0] / "policy" / "model.safetensors") for k in ("ddp", "resumed"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6


def test_a_sweep_of_two_process_runs_runs_each_job_once_in_its_own_directory(tmp_path, micro_model_dir):
    """`train.py -m trainer=ddp_cpu loss=bco,dpo`: Lightning re-launches rank 1 from sys.argv; it must re-run the
    job, not the sweep, in the job's directory, and the second job must start its own rank 1."""
    data = write_toy_files(tmp_path / "data", n=16)["pairs"]
    probe = "{_target_: ddp_probe.RankProbe, out_dir: '${hydra:runtime.output_dir}'}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"),
                                                        os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", "trainer=ddp_cpu", "loss=bco,dpo",  # default sweep dir
           f"model.path={micro_model_dir}", f"data.path={data}", f"data.batch_size={PER_RANK}",
           "trainer.max_epochs=1", "logger=csv", f"+eval.callbacks=[{probe}]", *TINY_EVAL]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # one sweep directory (multirun/<date>/<time>): a rank 1 re-running the sweep would make its own, its ${now}
    # being a few seconds later, and leave the jobs' directories without their rank-1 files
    (sweep,) = (tmp_path / "multirun").glob("*/*")
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name != "report")
    assert jobs == ["0_bco", "1_dpo"] and not (tmp_path / "outputs").exists()
    assert (sweep / "report" / "table.md").exists()  # the sweep's report, in the sweep's own directory
    for job, loss in (("0_bco", "bco"), ("1_dpo", "dpo")):
        run = sweep / job
        assert json.loads((run / "metrics.json").read_text())["run"]["loss"] == loss
        ranks = probes(run)
        assert [p["world_size"] for p in ranks] == [2, 2]  # this job ran as two processes
        assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 2  # 16 pairs / (2 x 4), once
        assert (run / "train_ddp_process_1.log").exists()
    assert proc.stdout.count("| Base ") == 2  # one result table per job: no job ran twice
