"""Checkpoints that are whole or absent on every file system, and a stop signal that saves one first.

Why not Lightning's default checkpoint IO: it serialises the whole checkpoint into memory, then writes it through
fsspec, whose local transaction writes a temporary file in $TMPDIR and moves it over the target. When $TMPDIR
and the run directory are on different file systems (a local /tmp and shared run storage, the usual cluster),
that move is a copy into the existing target, truncate then write: a kill during the copy left `last.ckpt` at
528,384 of 9,666,501 bytes, unloadable, and it was the only checkpoint. `AtomicCheckpointIO` streams
`torch.save` into a temporary file beside the target and renames it over the target once it is on disk
(`spot.rows.atomic_output`): no copy in $TMPDIR or in memory, and the previous checkpoint survives until the
new one is whole. A full disk stops the run with one line and leaves no partial file under a checkpoint's name.

DeepSpeed writes a checkpoint as a directory, each rank its shards: `spot.speed.deepspeed.AtomicDeepSpeedStrategy`
writes it into a staging directory and swaps it in whole (`spot.rows.atomic_directory`).

`ScheduleGuard`: a checkpoint records how many steps its learning-rate schedule spans (warmup and cosine decay
over the trainer's estimated stepping batches, spot.module); a resume whose trainer would span another number
(a larger `trainer.max_steps` after a run that `max_steps` stopped, other epochs, batch size, devices) stops with
one line naming the settings, before its first step. Lightning would otherwise restore the scheduler's step into
the new span (a learning rate that had decayed to 0 jumps back up) and, from a checkpoint written when
`max_steps` ended the run mid-epoch, start at the next epoch: the rest of the epoch was never trained.

`SaveOnSignal`: SIGINT (Ctrl-C) or SIGTERM (a scheduler's preemption) during training finishes the optimizer step
in progress, saves `checkpoints/last.ckpt` and stops with one line saying what was kept and how to resume; all
ranks stop at the same step. A second signal exits at once (the checkpoints on disk are whole either way).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from spot.errors import DiskFull, Stopped, UserError
from spot.rows import atomic_output

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class CheckpointWriteError(UserError):
    """A checkpoint that could not be written (full disk, no permission); nothing partial was left."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose writes are atomic on every local file system (see the module docstring).
    Remote URLs (s3://, gs://, ...) go through Lightning's own writer, which uploads in one request."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        for stale in path.parent.glob(f".{path.name}.tmp-*"):  # half-written by a run killed mid-save
            if stale.name != f".{path.name}.tmp-{os.getpid()}":
                stale.unlink(missing_ok=True)  # (up to a whole checkpoint's size: ~100 GB at 8B)
        try:
            with atomic_output(path, "wb") as f:
                torch.save(checkpoint, f)
        except (OSError, DiskFull) as e:
            kept = sorted(p.name for p in path.parent.glob("*.ckpt"))
            # a full disk is DiskFull by now (spot.rows.atomic_output); other OSErrors say what they are
            reason = "the disk is full" if isinstance(e, DiskFull) else e.strerror or type(e).__name__
            raise CheckpointWriteError(
                f"checkpoint {path} not written: {reason}; nothing partial was left, and the "
                f"checkpoints already there are intact ({', '.join(kept) or 'none yet'})") from e


class ScheduleGuard(L.Callback):
    """Refuses a resume that would continue the checkpoint's learning-rate schedule over another number of steps
    (see the module docstring). Checkpoints written before it (no record) resume unchecked."""

    KEY = "spot_schedule"

    def __init__(self, ckpt_path: str | Path | None = None):
        self.ckpt_path, self.saved = ckpt_path, None

    @staticmethod
    def span(trainer) -> dict:
        steps = trainer.estimated_stepping_batches  # inf: no max_steps and an endless data set
        return {"steps": int(steps) if steps != float("inf") else None, "trainer.max_steps": trainer.max_steps,
                "trainer.max_epochs": trainer.max_epochs}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint[self.KEY] = self.span(trainer)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self.saved = checkpoint.get(self.KEY)

    def on_train_start(self, trainer, pl_module) -> None:
        now = self.span(trainer)
        if self.saved is None or self.saved["steps"] == now["steps"]:
            return
        raise ScheduleMismatch(
            f"ckpt_path={self.ckpt_path}: its learning-rate schedule spans {self.saved['steps']} steps "
            f"({_settings(self.saved)}), this run's would span {now['steps']} ({_settings(now)}); resuming would "
            "switch schedules midway (a run that max_steps ended has decayed to its end): resume with the trainer, "
            "data and batch settings it was trained with, or start a new run")


def _settings(span: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in span.items() if k != "steps")


class ScheduleMismatch(UserError):
    """A resume whose schedule would span another number of steps than its checkpoint's (ScheduleGuard)."""


class SaveOnSignal(L.Callback):
    """On SIGINT or SIGTERM during training: finish the step, save `path`, stop (see the module docstring).

    The handlers are installed when training starts (Lightning installs its own SIGTERM handler just before) and
    the previous ones restored when it ends, so the scoring before and after training keeps the usual Ctrl-C.
    Checked at optimizer-step boundaries only: inside an accumulation window the gradients so far are in no
    checkpoint, so a resume from there would not continue the same run.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._step = -1

    def _handle(self, signum: int, frame) -> None:
        if self.signum is not None:  # the second signal: stop now, as the default handler would
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step, then stopping "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def on_train_start(self, trainer, pl_module) -> None:
        self._step = trainer.global_step
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in STOP_SIGNALS}
        except ValueError:  # not the main thread (a notebook's worker, a test runner thread): no handlers
            self._previous = {}

    def _restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._step:  # inside an accumulated step
            return
        self._step = trainer.global_step
        stop = self.signum is not None
        if trainer.world_size > 1:  # any rank's signal stops every rank at this same step
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if not stop:
            return
        trainer.save_checkpoint(self.path)
        self._restore()
        name = signal.Signals(self.signum or signal.SIGTERM).name
        raise Stopped(f"{name} at step {trainer.global_step} (epoch {trainer.current_epoch}): saved {self.path}; "
                          f"resume with ckpt_path={self.path}", self.signum or signal.SIGTERM)

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()
