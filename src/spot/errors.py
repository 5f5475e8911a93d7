"""The one kind of error a user can fix, and the one way an entry point reports it.

Anything the user can correct (a config value, a path, a malformed row, a model that will not load) is raised
as a `UserError` whose message names the key, file:line or field. Entry points catch it and end with one line
on stderr and exit status 2 (`exit_with`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import errno
import sys
from contextlib import contextmanager


class UserError(ValueError):
    """Input the user must fix; the message says what and where. `prefix` and `exit_status` are how the entry
    point reports it (a run stopped by a signal says "stopped" and exits 128 + the signal's number)."""

    prefix = "error"
    exit_status = 2


class ConfigError(UserError):
    """A config value out of its type or range; the message names the key."""


class DataError(UserError):
    """A data file or row that cannot be used; the message names the file, line and field."""


class Stopped(UserError):
    """A job stopped by SIGINT or SIGTERM after keeping what it had (a checkpoint, the replies in flight): it
    says "stopped: ..." and exits 128 + the signal's number, as a shell reports a signalled process."""

    prefix = "stopped"

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_status = 128 + signum


class Interrupted(BaseException):
    """Ctrl-C outside the training steps (loading, scoring), raised by `ctrl_c_stops`' handler. Not a
    KeyboardInterrupt: Lightning turns that into exit status 1 with nothing said about what is on disk."""


@contextmanager
def ctrl_c_stops(out_dir):
    """Ctrl-C (SIGINT) anywhere in a training run ends it as `Stopped` (exit status 130) with one line saying
    what was kept (`what_was_kept`). During the training steps spot.checkpointing.SaveOnSignal handles it
    first (a checkpoint, then Stopped) and restores this handler after."""
    import signal
    from pathlib import Path

    def interrupt(signum, frame):
        raise Interrupted

    try:
        previous = signal.signal(signal.SIGINT, interrupt)
    except ValueError:  # not the main thread: Python's KeyboardInterrupt, as before
        previous = None
    try:
        yield
    except Interrupted:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C does not cut the cleanup short
        raise Stopped(what_was_kept(Path(out_dir)), signal.SIGINT) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def what_was_kept(out) -> str:
    """The stop line of a run interrupted outside its training steps: its newest checkpoint and how to resume;
    or, with nothing saved, that nothing was kept, after the logger's empty runs and the run directory are
    removed (`discard_logger_runs`, `discard_unused_run_dir`)."""
    ckpts = sorted(out.glob("**/*.ckpt"), key=lambda p: p.stat().st_mtime) if out.is_dir() else []
    policy = out / "policy"
    saved = f"; the trained policy is in {policy}" if policy.is_dir() else ""
    if ckpts:
        return f"SIGINT: checkpoint {ckpts[-1]} kept{saved}; resume with ckpt_path={ckpts[-1]}"
    if saved:
        return f"SIGINT after training{saved}, not scored (python evaluate.py model={out} scores it)"
    discard_logger_runs(out)
    discard_unused_run_dir()
    where = "removed" if not out.exists() else "left with what it held before this run"
    return f"SIGINT before anything was saved: nothing kept; the run directory {out} is {where}"


def discard_logger_runs(out) -> None:
    """Finishes this process's W&B run without its "wandb sync" hint and removes it, and removes CSV logger
    versions with no metrics: a run stopped before anything was saved logged nothing worth keeping."""
    import contextlib
    import io
    import shutil

    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        from pathlib import Path

        run_dir = Path(wandb.run.dir).parent  # <out>/wandb/offline-run-<id>/files -> the run's folder
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            wandb.run.finish(exit_code=130)
        if out.resolve() in run_dir.resolve().parents:
            shutil.rmtree(run_dir, ignore_errors=True)
            logs = out / "wandb"  # wandb's own debug logs and latest-run link, about no run now
            if logs.is_dir() and not any(p.name.startswith(("run-", "offline-run-")) for p in logs.iterdir()):
                shutil.rmtree(logs, ignore_errors=True)
    for version in (out / "csv").glob("version_*"):
        if not (version / "metrics.csv").exists():
            shutil.rmtree(version, ignore_errors=True)
    if (out / "csv").is_dir() and not any((out / "csv").iterdir()):
        (out / "csv").rmdir()


class DiskFull(UserError):
    """A write that failed for want of space (a full disk or an exhausted quota); the message names the file."""


@contextmanager
def space_checked(path):
    """Turns a write to `path` that fails for want of space into one line naming the file (`DiskFull`): what
    was written before it is whole (journals cut a torn last line, final files are replaced atomically), so a
    rerun after freeing space resumes. Every other OSError passes unchanged."""
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DiskFull(f"cannot write {path}: the disk is full ({e.strerror}); free space and rerun the same "
                       "command to resume") from None


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of a library's exception message (its type name when empty), for one-line errors."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]


def exit_with(error: BaseException) -> None:
    """One line on stderr, exit status 2 (a UserError may say otherwise): the style of every entry point. A
    run stopped this way before it wrote anything leaves no run directory behind (`discard_unused_run_dir`)."""
    discard_unused_run_dir()
    print(f"{getattr(error, 'prefix', 'error')}: {error}", file=sys.stderr)
    sys.exit(getattr(error, "exit_status", 2))


def discard_unused_run_dir() -> None:
    """Removes the Hydra run directory when it holds only what Hydra itself wrote (.hydra/ and the job's log),
    and the date directory above it when that is left empty; anything a run wrote keeps the directory."""
    import shutil
    from pathlib import Path

    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return
        hydra_cfg = HydraConfig.get()
        out, log_name = Path(hydra_cfg.runtime.output_dir), f"{hydra_cfg.job.name}.log"
        cwd = Path(hydra_cfg.runtime.cwd).resolve()
    except Exception:  # no Hydra app around this call (a library user): nothing to clean
        return
    if not out.is_dir() or any(p.name not in (".hydra", log_name) for p in out.iterdir()):
        return
    shutil.rmtree(out, ignore_errors=True)
    parent = out.resolve().parent  # outputs/<date>, then outputs: removed while empty, up to the working dir
    while parent != cwd and cwd in parent.parents and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent


def check_type(value, types: type | tuple[type, ...], key: str) -> None:
    """Raise ConfigError unless `value` is of `types` (a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, types):
        names = " or ".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
        raise ConfigError(f"{key}: must be {'an' if names[0] in 'aeiou' else 'a'} {names}, got {value!r}")


def check(ok: bool, key: str, message: str) -> None:
    """Raise ConfigError('<key>: <message>') unless `ok`: typed configs check their ranges with this."""
    if not ok:
        raise ConfigError(f"{key}: {message}")
