"""train.py with the speed switches, as a user runs it: the reference cache is written once and then read."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY_EVAL = ["eval.suites.toy_in_domain.n=4", "eval.suites.toy_ood.n=2", "eval.suites.toy_prior.n=2",
             "eval.sampling.batch_size=8"]


def test_sweep_computes_reference_log_probs_once_then_reads_them(tmp_path, micro_model_dir, toy_files):
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", "loss=dpo,bco", f"model.path={micro_model_dir}",
           f"data.path={toy_files['pairs']}", "trainer.max_steps=2", "logger=csv", "hydra.sweep.dir=sweep",
           "speed.layout=shared", "speed.group_by_length=true", "speed.gradient_checkpointing=true",
           "save_policy=false", *TINY_EVAL]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    cached = sorted((tmp_path / ".cache" / "spot" / "ref_logps").glob("*.pt"))
    assert len(cached) == 2  # train and val split, shared by both runs of the sweep
    logs = [p.read_text() for p in sorted((tmp_path / "sweep").glob("*/train.log"))]
    assert "computed in" in logs[0] and "computed in" not in logs[1] and "from .cache" in logs[1]
    for run in sorted((tmp_path / "sweep").glob("*/metrics.json")):
        train = json.loads(run.read_text())["train"]
        assert "train/rewards/margins" in train and "train/kl" in train
