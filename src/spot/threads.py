"""How many threads a run computes with: chosen from the cores it may use, not inherited from torch.

torch starts one intra-op thread per core it sees, whatever else runs there; on a shared machine (load 3-4 on 2
cores) a 20-step toy run took 140-325 s that way and 9-12 s with one thread (benchmarks/bench_threads.py). So a
run takes the cores it may use (the CPU affinity, and a cgroup quota where one is set), less those the load
average says other processes already keep busy, at least one, shared among the training processes that run on this
machine (trainer=ddp_cpu's ranks); an OMP_NUM_THREADS set in the environment is taken as it is. `threads=N` in any
entry point's config sets it; `threads=auto` is the default. Idle OpenMP threads are told to sleep rather than
spin (OMP_WAIT_POLICY=PASSIVE, unless the environment already says), which must happen before torch is imported:
entry points start through `spot.entry.main_of`, which calls `quiet_idle_threads()` first.
"""

from __future__ import annotations

import math
import os

from spot.errors import ConfigError


def quiet_idle_threads() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless set: waiting OpenMP threads sleep instead of spinning against the other
    processes on the machine. Read when torch loads its OpenMP runtime, so call it before `import torch`."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 CPU quota where one is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def choose_threads(setting, processes: int = 1, cores: int | None = None, load: float | None = None,
                   environ: dict | None = None) -> tuple[int, str]:
    """(threads, why) for `threads=<setting>`: N as given; for "auto" OMP_NUM_THREADS where the environment
    sets it (a scheduler's or the user's choice), else the usable cores not already busy (the 1-minute load
    average, rounded down, counts the busy ones), divided among `processes`, at least 1."""
    if setting != "auto":
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ConfigError(f"threads: must be auto or a whole number >= 1, got {setting!r}")
        return setting, "threads=" + str(setting)
    omp = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) >= 1:
        return int(omp), f"threads=auto: OMP_NUM_THREADS={omp} in the environment"
    cores = usable_cores() if cores is None else cores
    load = (os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0) if load is None else load
    free = max(1, cores - math.floor(load))
    threads = max(1, free // max(1, processes))
    why = f"threads=auto: {cores} usable cores, load average {load:.1f}"
    if processes > 1:
        why += f", {processes} processes"
    return threads, why


def apply_threads(setting, processes: int = 1) -> str:
    """Sets torch's intra-op thread count by `choose_threads` and returns the line that says so."""
    import torch

    threads, why = choose_threads(setting, processes)
    torch.set_num_threads(threads)
    wait = os.environ.get("OMP_WAIT_POLICY", "unset")
    return f"compute threads: {threads} ({why}; OMP_WAIT_POLICY={wait}; threads=N sets it)"
