"""The benchmark scripts run (tiny sizes; the figures themselves come from running them, not from tests)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(args, tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_bench_train_losses_agree_with_trl_step_by_step(tmp_path):
    pytest.importorskip("trl")
    run(["benchmarks/bench_train.py", "--models", "micro", "--steps", "3", "--batch", "2", "--repeat", "1",
         "--rows", "spot:bce,trl:bco_pair,spot:dpo,trl:sigmoid"], tmp_path)
    rows = {r["row"]: r for r in json.loads((tmp_path / "bench_train.json").read_text())["models"][0]["rows"]}
    assert rows["spot:bce"]["max_dloss"] < 1e-4 and rows["spot:dpo"]["max_dloss"] < 1e-4
    assert rows["spot:dpo"]["slots"][0] < rows["trl:sigmoid"]["slots"][0]  # shared prefixes, no padding


def test_bench_train_first_gradient_equals_trls(tmp_path):
    pytest.importorskip("trl")
    run(["benchmarks/bench_train.py", "--models", "micro", "--batch", "2", "--steps", "2", "--grad-check"], tmp_path)
    (model,) = json.loads((tmp_path / "bench_train.json").read_text())["models"]
    rows = model["grad_check"]
    assert [(r["loss"], r["layout"]) for r in rows] == [("dpo", "shared"), ("dpo", "padded"), ("bce", "shared"),
                                                        ("bce", "padded")]
    for r in rows:
        assert abs(r["spot_loss"] - r["trl_loss"]) < 1e-6 and r["grad_norm"] > 0
        assert r["grad_rel_l2"] < 1e-5  # float32 rounding; a wrong token, mask or sign gives order 1
