"""benchmarks/gpu_check.py: the commands it gives train.py compose to what the check means to run, its
arithmetic, and (slow) the CPU smoke run end to end through train.py. The GPU run itself needs a GPU."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402


def composed(cpu_smoke: bool, run: str, tmp_path: Path):
    """train.yaml composed with the overrides gpu_check passes for `run` (Hydra's own keys left out)."""
    args = argparse.Namespace(cpu_smoke=cpu_smoke, batch=4, accumulate=2, steps=30, lr=1e-5)
    cmd = gpu_check.train_command(run, tmp_path / "model", tmp_path / "pairs.jsonl", tmp_path, args)
    assert cmd[1] == str(ROOT / "train.py")
    overrides = [o for o in cmd[2:] if not o.startswith("hydra.")]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def test_gpu_runs_are_one_gpu_zero2_bf16_without_checkpoints_or_suites(tmp_path):
    from spot.cli import build_suites

    bco, dpo, zero3 = (composed(False, run, tmp_path) for run in gpu_check.RUNS)
    for cfg in (bco, dpo, zero3):
        assert cfg.trainer.strategy.stage == (3 if cfg is zero3 else 2) and cfg.trainer.devices == 1
        assert cfg.trainer.precision == "bf16-mixed" and cfg.model.dtype == "bfloat16"
        assert cfg.trainer.callbacks == [] and cfg.trainer.max_steps == (10 if cfg is zero3 else 30)
        assert cfg.trainer.log_every_n_steps == 1 and cfg.speed.gradient_checkpointing
        assert cfg.save_policy == (cfg is zero3)
        assert cfg.logger._target_.endswith("CSVLogger") and build_suites(cfg.eval) == []
    assert bco.loss.fn.path == "spot.losses.bco" and bco.speed.precompute_reference
    assert dpo.loss.fn.path == "spot.losses.dpo" and not dpo.speed.precompute_reference
    assert zero3.loss.fn.path == "spot.losses.bco" and not zero3.speed.precompute_reference
    assert zero3.model.max_shard_size == "1GB"


def test_cpu_smoke_runs_bf16_mixed_on_the_cpu_trainer(tmp_path):
    cfg = composed(True, "bco_precomputed", tmp_path)
    assert cfg.trainer.accelerator == "cpu" and "strategy" not in cfg.trainer
    assert cfg.trainer.precision == "bf16-mixed" and cfg.model.dtype == "bfloat16"


def test_flops_params_of_qwen3_1_7b():
    """28 layers x (q,o: 2048 x 128 x 16 x 2 + k,v: 2048 x 128 x 8 x 2 = 12,582,912; MLP 3 x 2048 x 6144 =
    37,748,736) = 1,409,286,144, plus the LM head 2048 x 151,936 = 311,164,928."""
    assert gpu_check.flops_params(gpu_check.QWEN3_17B) == 1_720_451_072


def test_targets_mfu_for_bco_only_memory_for_every_run():
    run = {"mfu": 0.39, "peak_mem_fraction": 0.59}
    assert gpu_check.targets_met("bco_precomputed", run) == {"mfu >= 40%": False,
                                                            "peak memory < 60% of the card": True}
    assert gpu_check.targets_met("dpo_live_reference", {**run, "peak_mem_fraction": 0.6}) == {
        "peak memory < 60% of the card": False}
    assert gpu_check.targets_met("bco_precomputed", {}) == {}  # CPU: nothing measured, nothing claimed


def test_memory_arithmetic_for_qwen3_8b():
    rows = gpu_check.memory_arithmetic()
    assert rows[0]["setup"] == "ZeRO-2" and rows[0]["model_states_gb"] == 30.7  # 8.19B x (2 + 14/8) bytes


@pytest.mark.slow
def test_cpu_smoke_trains_every_run_through_train_py(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu-smoke", "--keep", str(tmp_path / "w")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_check.json").read_text())
    for name in ("bco_precomputed", "dpo_live_reference"):
        run = result[name]
        assert "error" not in run, run
        assert run["steps"] == 6 and run["tokens_per_s"] > 0 and run["tokens"] > 0
        assert [s for s, _ in run["loss_curve"]] == list(range(1, 7))
        assert (tmp_path / "w" / name / "train_log.jsonl").exists()  # train.py's own run directory
    assert result["dpo_live_reference"]["loss_curve"][0][1] == pytest.approx(0.6931, abs=1e-3)  # log 2 at step 1
    saving = result["bco_zero3_save"]  # on the CPU the cpu trainer: the save path, not ZeRO-3
    assert "error" not in saving and saving["steps"] == 2
    assert saving["saved_policy"] == {"shards": ["model.safetensors"], "dtype": "bfloat16"}
