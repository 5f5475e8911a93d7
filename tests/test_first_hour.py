"""A newcomer's first hour, as issue 24 found it in a fresh clone: the README's dry run of the Oracle stage
runs from the repository alone, a taken port is one line, and a bad problem path names the key to fix."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spot.errors import DataError
from spot.rectify.problems import file_items

ROOT = Path(__file__).resolve().parents[1]
SERVER = [sys.executable, "-m", "spot.rectify.oracles.fake_server"]


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", "ANTHROPIC_API_KEY": "x"}


def test_a_taken_port_is_one_line_naming_the_way_out():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run([*SERVER, "--port", str(port)], cwd=ROOT, env=env(), capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line
    assert proc.stderr.startswith(f"error: port {port} is taken") and "--port 0" in proc.stderr
    assert "oracle.backend.base_url=" in proc.stderr and "Traceback" not in proc.stderr


def test_the_readme_dry_run_works_from_the_repository_on_a_free_port(tmp_path):
    """The README's two commands, with `--port 0` as the README says to use when 8765 is taken, run where a
    user runs them (the repository root), so every path they name must be inside it."""
    readme = (ROOT / "README.md").read_text()
    assert "fake_server --answers assets/gsm8k/test.jsonl &" in " ".join(readme.split())
    assert "python rectify.py problems=gsm8k_solutions oracle=fake" in " ".join(readme.split())
    server = subprocess.Popen([*SERVER, "--port", "0", "--answers", "assets/gsm8k/test.jsonl"], cwd=ROOT, env=env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline().strip()  # "fake Anthropic API listening on http://127.0.0.1:PORT"
        url = line.rsplit(" ", 1)[-1]
        assert line.startswith("fake Anthropic API listening on http://127.0.0.1:") and not url.endswith(":0")
        out = tmp_path / "out"
        done = subprocess.run([sys.executable, "rectify.py", "problems=gsm8k_solutions", "oracle=fake",
                               f"oracle.backend.base_url={url}", "problems.source.limit=3", f"out_dir={out}",
                               f"hydra.run.dir={tmp_path / 'hydra'}", "progress=false"],
                              cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    finally:
        server.kill()
        server.wait()
    assert done.returncode in (0, 3), done.stderr[-2000:]  # 3: no pair kept, still a whole run
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["samples"] == 12 and report["counts"]["direct"] == 3  # 3 problems, 4 solutions each


def test_a_missing_problem_file_names_problems_source_path(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(DataError, match=rf"^problems\.source\.path={missing} does not exist"):
        file_items(str(missing))
