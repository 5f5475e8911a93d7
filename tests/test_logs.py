"""Lightning's info lines print once under Hydra (spot.logs): Lightning's top package adds a console handler of
its own to the `lightning` logger and still propagates to the root logger, where Hydra's console handler
printed the same line again."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HYDRA_APP = """
import hydra

@hydra.main(version_base=None)
def main(cfg):
    import spot.data  # what every training run imports before its Trainer
    import lightning as L

    L.seed_everything(1234)

main()
"""

PLAIN = """
import logging

import spot.data

handlers = logging.getLogger("lightning").handlers
print("lightning console handlers:", sum(type(h) is logging.StreamHandler for h in handlers))
"""


def output_of(script: str, tmp_path: Path) -> str:
    (tmp_path / "app.py").write_text(script)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout + proc.stderr


def test_a_lightning_line_prints_once_under_hydra_and_reaches_the_job_log(tmp_path):
    out = output_of(HYDRA_APP, tmp_path)
    assert out.count("Seed set to 1234") == 1, out
    assert "[lightning.fabric.utilities.seed][INFO] - Seed set to 1234" in out  # Hydra's handler printed it
    logs = list((tmp_path / "outputs").rglob("app.log"))
    assert len(logs) == 1 and logs[0].read_text().count("Seed set to 1234") == 1


def test_without_hydra_lightning_keeps_its_own_console_handler(tmp_path):
    """No root handlers (a plain script, a library user): Lightning's handler is the only one, so it stays."""
    assert "lightning console handlers: 1" in output_of(PLAIN, tmp_path)
