"""How long a new user's mistakes take to be answered: each command of tests/test_newcomer.py, timed.

    python benchmarks/bench_errors.py [--repeat 3]

Each runs in a fresh empty directory, as the test does; the table gives the median wall time, the exit status
and the error line. The aim is a few seconds: the checks run before Lightning and transformers are imported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_newcomer import MISTAKES  # noqa: E402  (the commands the test checks, timed here)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    print(f"load average {os.getloadavg()[0]:.1f}; median of {args.repeat}\n")
    print(f"{'command':<58} {'s':>6} {'exit':>4}  error")
    for script, overrides, _ in MISTAKES:
        toy = [] if script == "evaluate.py" else [f"model.path={ROOT / 'assets/toy-base'}"]
        times, proc = [], None
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as cwd:
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, str(ROOT / script), *toy, *overrides], cwd=cwd, env=env,
                                      capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
        line = (proc.stderr.strip().splitlines() or [""])[-1]
        print(f"{script + ' ' + ' '.join(overrides):<58} {statistics.median(times):>6.1f} {proc.returncode:>4}  "
              f"{line[:90]}")


if __name__ == "__main__":
    main()
