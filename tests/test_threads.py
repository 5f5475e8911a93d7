"""spot.threads: the thread count a run computes with is chosen from the cores it may use, said in its first
lines, and set by `threads=N`; idle OpenMP threads are told to sleep before torch loads."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spot.errors import ConfigError
from spot.threads import choose_threads, usable_cores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cores, load, processes, want", [
    (2, 0.3, 1, 2),    # an idle 2-core machine: both cores
    (2, 1.2, 1, 1),    # one core already busy: the other
    (2, 3.8, 1, 1),    # more busy than there are cores: still one thread
    (16, 4.0, 1, 12),  # the cores the load leaves free
    (16, 0.0, 2, 8),   # two training processes (trainer=ddp_cpu) share them
    (2, 0.0, 4, 1),    # never below one
])
def test_auto_takes_the_free_usable_cores(cores, load, processes, want):
    threads, why = choose_threads("auto", processes, cores=cores, load=load, environ={})
    assert threads == want
    assert f"{cores} usable cores" in why and f"load average {load:.1f}" in why


def test_auto_takes_omp_num_threads_when_the_environment_sets_it():
    assert choose_threads("auto", cores=16, load=0.0, environ={"OMP_NUM_THREADS": "3"}) == \
        (3, "threads=auto: OMP_NUM_THREADS=3 in the environment")
    assert choose_threads("auto", cores=16, load=0.0, environ={"OMP_NUM_THREADS": "x"})[0] == 16
    assert choose_threads(2, environ={"OMP_NUM_THREADS": "3"})[0] == 2  # threads=N wins


def test_a_number_is_taken_as_given_and_anything_else_is_one_line():
    assert choose_threads(3, cores=2, load=9.0) == (3, "threads=3")
    for bad in (0, -1, "many", 1.5, True):
        with pytest.raises(ConfigError, match="^threads: must be auto or a whole number >= 1, got "):
            choose_threads(bad)


def test_usable_cores_are_this_process_affinity_at_most():
    assert 1 <= usable_cores() <= len(os.sched_getaffinity(0))


def test_train_py_sets_the_wait_policy_before_torch_and_checks_threads_first(tmp_path):
    """The environment train.py's job sees, and threads=0 refused in the first second, before torch loads."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), "threads=0"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "error: threads: must be auto or a whole number >= 1, got 0"
    # train.py imports no torch at the top, and main_of sets the policy before it calls the Hydra main
    code = "import os, sys, train; from spot.entry import main_of; " \
           "main_of(lambda: print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY')))"
    probe = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=120)
    assert probe.stdout.split() == ["False", "PASSIVE"], probe.stderr[-2000:]
