"""The real entry point, run as a user runs it, on a micro model: one run, a sweep, bad input, every config.

What needs no process of its own (a method's data and learning rate, a resumed run) runs in this one
(conftest.train_here: the config composed as train.py composes it, then spot.run.run)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import train_here

ROOT = Path(__file__).resolve().parents[1]
TINY_EVAL = ["eval.suites.toy_in_domain.n=6", "eval.suites.toy_ood.n=3", "eval.suites.toy_prior.n=3",
             "eval.sampling.batch_size=8"]


def train(cwd, *overrides, check=True, env=None):
    cmd = [sys.executable, str(ROOT / "train.py"), *overrides]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def test_one_bco_run_writes_metrics_checkpoint_policy_and_wandb(tmp_path, micro_model_dir, toy_files):
    # output to pipes, as under nohup or SLURM; a progress line at every update instead of every 30 s
    env = {**os.environ, "SPOT_PROGRESS_EVERY_S": "0"}
    proc = train(tmp_path, f"model.path={micro_model_dir}", f"data.path={toy_files['pairs']}",
                 "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "hydra.run.dir=run", *TINY_EVAL, env=env)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["loss"] == "bco" and metrics["n"]["toy_in_domain"] == 6
    for side in ("base", "trained"):
        assert set(metrics[side]["groups"]) == {"in_domain", "ood", "prior"}
        assert all(0.0 <= v <= 1.0 for v in metrics[side]["suites"].values())
    assert metrics["delta"]["forgetting"] == pytest.approx(
        metrics["base"]["groups"]["prior"] - metrics["trained"]["groups"]["prior"])
    paired = metrics["paired"]["toy_in_domain"]
    assert paired["n"] == 6 and paired["delta"] == pytest.approx(
        metrics["trained"]["suites"]["toy_in_domain"] - metrics["base"]["suites"]["toy_in_domain"])
    assert metrics["steps"] == 4  # 23 training pairs (1 held out for val) in batches of 16, 2 epochs
    assert "train/reward_shift" in metrics["train"] and "train/rewards/margins" in metrics["train"]
    assert sorted(p.name for p in (run / "checkpoints").glob("*.ckpt"))[-1] == "last.ckpt"
    assert (run / "policy" / "model.safetensors").exists()
    assert len((run / "samples.jsonl").read_text().splitlines()) == 6 + 3 + 3 * 3
    assert list((run / "wandb").glob("offline-run-*")), "W&B offline run directory missing"
    log_rows = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert any("train/loss" in r for r in log_rows) and any("val/loss" in r for r in log_rows)
    assert "| Base |" in proc.stdout and "| bco |" in proc.stdout
    # every long stage reports progress as plain lines where there is no terminal
    lines = proc.stderr.splitlines()
    for stage in ("[eval toy_in_domain]", "[reference log-probs]", "[train]"):
        assert any(line.startswith(stage) for line in lines), stage
    train_lines = [line for line in lines if line.startswith("[train]")]
    assert train_lines[-1].startswith("[train] 4/4 steps (100%)") and "loss" in train_lines[-1]
    # the table says how it was scored, and the run ends by saying where its results are
    assert "scored greedy; problems: toy_in_domain 6, toy_ood 3" in proc.stdout
    tail = proc.stdout[proc.stdout.index("results in "):]
    for name in ("metrics.json", "samples.jsonl", "train_log.jsonl", "policy", "checkpoints", "wandb sync"):
        assert name in tail


def test_sweep_over_losses_and_betas(tmp_path, micro_model_dir, toy_files):
    proc = train(tmp_path, "-m", "loss=bco,dpo", "loss.beta=0.05,0.1", f"model.path={micro_model_dir}",
          f"data.path={toy_files['pairs']}", "trainer.max_steps=1", "logger=csv", "hydra.sweep.dir=sweep",
          *TINY_EVAL)
    metrics = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("*/metrics.json"))]
    assert sorted((m["run"]["loss"], m["run"]["beta"]) for m in metrics) == [("bco", 0.05), ("bco", 0.1),
                                                                             ("dpo", 0.05), ("dpo", 0.1)]
    # jobs named and labelled by what the sweep varies besides the method (once 0_bco and 1_bco, rows "bco")
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name[0].isdigit())
    assert jobs == ["0_bco_beta-0.05", "1_bco_beta-0.1", "2_dpo_beta-0.05", "3_dpo_beta-0.1"]
    rows = [line.split("|")[1].strip() for line in proc.stdout.splitlines() if line.startswith("| ")]
    assert [r for r in rows if r not in ("method", "Base")] == ["bco beta=0.05", "bco beta=0.1", "dpo beta=0.05",
                                                                "dpo beta=0.1"]
    # the base is scored once; the other runs read the cache and say so, with the time they actually spent
    first, *rest = [m["base"] for m in metrics]
    assert not first["cached"] and first["seconds"] > 0
    assert all(b["cached"] and b["seconds"] == 0.0 and b["computed_seconds"] == first["seconds"] for b in rest)


def test_sft_method_trains_on_single_completions(tmp_path, micro_model_dir, toy_files):
    # toy_data= names the rectify out_dir whose direct.jsonl method=sft reads (it reached the data module as a
    # literal "${toy_data}" once)
    returned = train_here(tmp_path, "method=sft", f"model.path={micro_model_dir}",
                          f"toy_data={toy_files['direct'].parent}", "trainer.max_steps=1", "logger=csv",
                          "hydra.run.dir=run", *TINY_EVAL)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert returned["run"] == metrics["run"]  # run() returns what it wrote
    assert metrics["run"]["method"] == "sft" and metrics["run"]["lr"] == 5e-4
    assert metrics["run"]["data"] == str(toy_files["direct"])
    assert "train/rewards/chosen" not in metrics["train"]  # SFT runs no reference


def test_a_not_spot_row_trains_with_its_weight(tmp_path, micro_model_dir, toy_files):
    train_here(tmp_path, "method=dpop", "loss.weight=5", f"model.path={micro_model_dir}",
               f"toy_data={toy_files['pairs'].parent}", "trainer.max_steps=1", "logger=csv", "hydra.run.dir=run",
               *TINY_EVAL)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["run"]["method"], metrics["run"]["loss"], metrics["run"]["weight"]) == ("dpop", "dpop", 5)
    assert "train/rewards/chosen" in metrics["train"]


def test_missing_data_file_names_key_and_command(tmp_path, micro_model_dir):
    proc = train(tmp_path, f"model.path={micro_model_dir}", "data.path=nowhere/pairs.jsonl", "logger=csv",
                 check=False)
    assert proc.returncode == 2
    assert "data.path=nowhere/pairs.jsonl does not exist; create it with: python rectify.py" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_malformed_data_row_is_one_line(tmp_path, micro_model_dir):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n{"prompt": "p", "chosen": "c"}\n')
    proc = train(tmp_path, f"model.path={micro_model_dir}", f"data.path={bad}", "logger=csv", check=False)
    assert proc.returncode == 2 and f"{bad}:2: missing field 'rejected'" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("overrides, line", [
    (["loss.betaa=0.1"], "error: loss.betaa: no such key; did you mean loss.beta?; the keys of loss are "),
    (["loss=bcoo"], "error: loss=bcoo: no such option; did you mean bco?; the options of loss are bce, bco, "
                    "bco_nll, dpo"),
    (["loss=kto"], "error: loss=kto: no such option; the options of loss are bce, bco, "),
    (["loss=sft", "loss.beta=0.1"], "error: loss.beta: no such key; the keys of loss are "),
    (["trainer.max_epochs=abc"], "error: trainer.max_epochs: must be an int, got 'abc'"),
], ids=["typo", "option-typo", "unknown-option", "key-of-another-loss", "bad-type"])
def test_what_hydra_or_the_settings_reject_is_one_line_exit_2_in_seconds_and_no_run_dir(tmp_path, overrides,
                                                                                          line):
    t0 = time.monotonic()
    proc = train(tmp_path, *overrides, check=False)  # hydra.run.dir: the default outputs/<date>/<time>_<loss>
    seconds = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line, nothing else
    assert proc.stderr.startswith(line), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no outputs/ run directory
    assert seconds < 5, f"{seconds:.1f} s"  # composed and checked before torch is imported


def test_paired_standard_error_by_hand():
    from spot.evaluate.metrics import paired_deltas

    # d = [1, 0, 0, -1]: mean 0, sample variance 2/3, se = sqrt(2/3 / 4)
    out = paired_deltas({"s": [0, 1, 0, 1]}, {"s": [1, 1, 0, 0]})["s"]
    assert out["delta"] == 0 and out["se"] == pytest.approx((2 / 3 / 4) ** 0.5) and out["n"] == 4


@pytest.mark.parametrize("override, message", [
    ("loss.beta=abc", "error: loss.beta: must be an int or float, got 'abc'"),
    ("eval.sampling.temperature=-1", "error: eval.sampling.temperature: must be 0 (greedy) or more, got -1"),
    ("optim.lr=0", "error: optim.lr: must be positive, got 0"),
])
def test_bad_values_are_one_line_naming_the_key(tmp_path, override, message):
    proc = train(tmp_path, override, "logger=csv", check=False)  # the shipped toy base: never loaded
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(message)


def test_kill_9_mid_epoch_then_resume_trains_as_an_uninterrupted_run(tmp_path, micro_model_dir, toy_files):
    """Checkpoints every 2 steps; the run is SIGKILLed after step 3, in the middle of its first epoch, and
    resumed from last.ckpt (step 2): steps 3..12 have the losses of the run nobody killed, batch for batch."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    common = [f"model.path={micro_model_dir}", f"data.path={toy_files['pairs']}", "data.batch_size=4",
              "trainer.max_epochs=2", "trainer.log_every_n_steps=1", "checkpoint.every_minutes=null",
              "checkpoint.every_n_steps=2", "logger=csv", "eval.cache_base=false", "save_policy=false",
              "eval.suites.toy_in_domain.n=2", "eval.suites.toy_ood.n=1", "eval.suites.toy_prior.n=1",
              "threads=1"]  # the killed run in its own process, the others here: the same arithmetic
    train_here(tmp_path, *common, "hydra.run.dir=clean")
    killed = train(tmp_path, *common, "hydra.run.dir=killed", "+eval.callbacks=[{_target_: kill_probe.KillAfterStep, "
                   "step: 3}]", env=env, check=False)
    assert killed.returncode == -9  # died as a crash does: no cleanup, no metrics
    assert not (tmp_path / "killed" / "metrics.json").exists()
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2  # mid-epoch 1 (6 a epoch)
    train_here(tmp_path, *common, "hydra.run.dir=resumed", f"ckpt_path={last}")

    def losses(run: str) -> dict[int, float]:
        rows = [json.loads(line) for line in (tmp_path / run / "train_log.jsonl").read_text().splitlines()]
        return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}

    clean, resumed = losses("clean"), losses("resumed")
    assert sorted(clean) == list(range(1, 13)) and sorted(resumed) == list(range(3, 13))
    assert [resumed[s] for s in range(3, 13)] == pytest.approx([clean[s] for s in range(3, 13)], abs=1e-6)
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text())["train"] for r in ("clean", "resumed"))
    assert b["train/reward_shift"] == pytest.approx(a["train/reward_shift"], abs=1e-7)
