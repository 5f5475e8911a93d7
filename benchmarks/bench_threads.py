"""The toy training job's wall time by thread setting, with another CPU-bound process running beside it.

    python benchmarks/bench_threads.py [--steps 20] [--repeat 1] [--busy 1]

Each row is one `python train.py` run of `--steps` BCO steps on the toy model and 24 toy pairs (no scoring:
eval=[]), started while `--busy` busy-loop processes keep cores taken, as on a machine where anything else
runs; the busy processes are started and killed by this script (by pid). Rows:

  torch default   what a run did before spot.threads: one thread per core, OpenMP's default spin-wait
  auto            threads=auto (the default now): the usable cores the load average leaves free, PASSIVE wait
  1 thread        threads=1
  2 threads       threads=2

The table gives the median wall seconds and each row's ratio to the 1-thread row.
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
from conftest import write_toy_files  # noqa: E402  (the tests' toy pairs)

BUSY_LOOP = "while True:\n    pass\n"


def rows(cores: int) -> list[tuple[str, list[str], dict]]:
    """(label, overrides, environment changes) per row. An empty OMP_WAIT_POLICY is OpenMP's default policy
    (spot.threads only fills in PASSIVE when the variable is absent; libgomp warns about the empty value and
    keeps its default)."""
    return [("torch default", [f"threads={cores}"], {"OMP_WAIT_POLICY": ""}),
            ("auto", ["threads=auto"], {}),
            ("1 thread", ["threads=1"], {}),
            ("2 threads", ["threads=2"], {})]


def run_once(cwd: Path, pairs: Path, steps: int, overrides: list[str], env: dict, timeout: float) -> float | None:
    cmd = [sys.executable, str(ROOT / "train.py"), f"model.path={ROOT / 'assets' / 'toy-base'}",
           f"data.path={pairs}", f"trainer.max_steps={steps}",
           "trainer.max_epochs=-1", "data.batch_size=4", "eval=[]", "logger=csv", "save_policy=false",
           "eval.cache_base=false", f"speed.reference_cache_dir={cwd / 'ref'}", f"hydra.run.dir={cwd / 'run'}",
           *overrides]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    if proc.returncode != 0:
        raise SystemExit(f"train.py failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--busy", type=int, default=1, help="busy-loop processes running beside each job")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds before a run counts as '>timeout'")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    base_env |= {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    results: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pairs = write_toy_files(Path(tmp) / "data")["pairs"]
        for label, overrides, env in rows(cores):
            busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)]
            try:
                times = []
                for i in range(args.repeat):
                    cwd = Path(tmp) / f"{label.replace(' ', '_')}-{i}"
                    cwd.mkdir()
                    times.append(run_once(cwd, pairs, args.steps, overrides, base_env | env, args.timeout))
            finally:
                for p in busy:
                    os.kill(p.pid, 9)
                    p.wait()
            done = [t for t in times if t is not None]
            results[label] = statistics.median(done) if len(done) == len(times) else None
    one = results["1 thread"]
    print(f"{args.steps} toy training steps, {args.busy} busy-loop process(es) beside each run, {cores} usable "
          f"cores, load average {os.getloadavg()[0]:.1f} at the end; median of {args.repeat}\n")
    print("| setting | wall s | vs 1 thread |\n|---|---:|---:|")
    for label, seconds in results.items():
        wall = f"{seconds:.1f}" if seconds is not None else f">{args.timeout:.0f}"
        ratio = f"{seconds / one:.2f}x" if seconds is not None and one else "-"
        print(f"| {label} | {wall} | {ratio} |")


if __name__ == "__main__":
    main()
