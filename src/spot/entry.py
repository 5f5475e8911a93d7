"""How a Hydra entry point (train.py, evaluate.py, rectify.py) starts: Hydra's own errors in the house style.

A value of the wrong type or out of range is a `UserError` raised by the typed settings (spot.errors). What
Hydra rejects while it composes the config (an unknown key such as `loss.betaa=0.1`, an unknown option such as
`loss=bcoo`, an override it cannot parse) would be its multi-line message and exit status 1; `main_of` runs
the `@hydra.main` function with Hydra told to raise them (HYDRA_FULL_ERROR=1) and ends on one line naming the
key and what is valid there, exit status 2, before any run directory exists.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from contextlib import contextmanager

from spot.errors import ConfigError, first_line


def main_of(hydra_main: Callable[[], object]) -> None:
    """Calls `hydra_main` (a function decorated with @hydra.main) and reports Hydra's composition errors as one
    line (spot.errors.exit_with); first tells idle OpenMP threads to sleep (spot.threads)."""
    from hydra.errors import ConfigCompositionException, OverrideParseException

    from spot.errors import exit_with
    from spot.threads import quiet_idle_threads

    quiet_idle_threads()  # before torch is imported: entry points import it inside their job, not at the top
    register_resolvers()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises instead of printing; children (DDP ranks) come here too
    try:
        hydra_main()
    except (ConfigCompositionException, OverrideParseException) as e:
        exit_with(composition_error(e))


def composition_error(e: Exception) -> ConfigError:
    """The one-line ConfigError for an exception Hydra raised while composing: the key and what is valid."""
    options, missing = getattr(e, "options", None), getattr(e, "missing_cfg_file", None)
    if missing and options is not None:  # MissingConfigException: `group=option` with no such file
        group, _, option = missing.rpartition("/")
        return ConfigError(f"{group}={option}: no such option{nearest(option, options)}; the options of {group} "
                           f"are {', '.join(options)}")
    cause = e.__cause__
    key, parent = getattr(cause, "full_key", None), getattr(cause, "parent_node", None)
    if key and parent is not None and hasattr(parent, "keys"):  # an override naming a key the node lacks
        prefix, _, name = str(key).rpartition(".")
        known = [k for k in parent.keys() if k != "hydra"]
        where = prefix or "the config"
        return ConfigError(f"{key}: no such key{nearest(name, known, prefix)}; the keys of {where} are "
                           f"{', '.join(map(str, known))} (+{key}=... adds a new one)")
    return ConfigError(first_line(e))


def nearest(name: str, candidates, prefix: str = "") -> str:
    """'; did you mean <prefix.>X?' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(name, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f"; did you mean {prefix + '.' if prefix else ''}{close[0]}?" if close else ""


# Already in a sweep job's name through ${method_name}: the loss, the method and the experiment that sets them.
NAMED_BY_METHOD = ("loss", "method", "experiment")


def register_resolvers() -> None:
    """${spot_job_suffix:${hydra.overrides.task}}: what conf/train.yaml's hydra.sweep.subdir appends to
    `<num>_<method>`. Registered before Hydra composes (main_of); a test composing the config calls it too."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("spot_job_suffix", lambda task: job_suffix(list(task)), replace=True)


def swept_keys(argv: list[str], sweeper_params=None) -> set[str]:
    """The keys a sweep varies: the command line's sweep overrides (`loss.beta=0.05,0.1`, `range(...)`) and an
    experiment's hydra.sweeper.params."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, keys = OverridesParser.create(), set(sweeper_params or {})
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        try:
            override = parser.parse_overrides([arg])[0]
        except Exception:  # Hydra itself reports what it cannot parse; here it only names nothing
            continue
        if override.is_sweep_override():
            keys.add(override.key_or_group)
    return keys


def swept_settings(task: list[str], argv: list[str] | None = None) -> list[tuple[str, str]]:
    """[(name, value)]: the swept settings among a sweep job's overrides `task`, so that jobs differing only in
    beta or the shift's mode get different names. A name is the key's last part, a value is cut to 24
    characters (a path: its file name), both with no `=` `,` or `/`: a run directory passes back unquoted as an
    override (model=<run dir>). `argv` is the command line (default sys.argv)."""
    import re
    import sys

    from hydra.core.hydra_config import HydraConfig

    params = HydraConfig.get().sweeper.get("params") if HydraConfig.initialized() else None
    swept = swept_keys(sys.argv[1:] if argv is None else argv, params) - set(NAMED_BY_METHOD)
    settings = []
    for item in task:
        key, _, value = item.lstrip("+~").partition("=")
        if key in swept:
            value = value.rstrip("/").rsplit("/", 1)[-1][:24]
            settings.append(tuple(re.sub(r"[^A-Za-z0-9._+-]", "_", s) for s in (key.rsplit(".", 1)[-1], value)))
    return settings


def job_suffix(task: list[str], argv: list[str] | None = None) -> str:
    """`_beta-0.05_mode-ema`: what a sweep job's directory name carries after `<num>_<method>`."""
    return "".join(f"_{name}-{value}" for name, value in swept_settings(task, argv))


def job_label(method_name: str, task: list[str], argv: list[str] | None = None) -> str:
    """The row label a sweep job prints for itself: `bco beta=0.05, mode=ema` (`bco` when nothing is swept)."""
    settings = ", ".join(f"{name}={value}" for name, value in swept_settings(task, argv))
    return f"{method_name} {settings}" if settings else method_name


LAUNCHER_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def one_job_per_launch():
    """Lets Lightning's multi-process launch (DDP, DeepSpeed: one process per device) run inside a Hydra sweep.

    Lightning starts ranks 1..N-1 by re-running `sys.argv` with `hydra.run.dir=<HydraConfig run.dir>`. Under
    `-m` that would re-run the whole sweep in every rank, into the run pattern's directory, and the launcher's
    environment (LOCAL_RANK, MASTER_PORT...) left behind by one job would make the next believe its processes
    were started outside and wait for ranks that never come. For each sweep job this re-launches the job alone
    (its own overrides, its own directory), and afterwards closes the process group and restores the
    environment. Outside a sweep, or in a re-launched rank, it does nothing.
    """
    import sys

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import read_write

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        yield
        return
    argv, env = sys.argv[:], {k: os.environ.get(k) for k in LAUNCHER_ENV}
    sys.argv = [argv[0], *hydra_cfg.overrides.task]
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = argv
        for k, v in env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        import torch

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
