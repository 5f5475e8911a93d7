"""Callbacks for tests that stop a training run as the world does: a crash (SIGKILL, no cleanup) after a step or
halfway through writing a checkpoint, a full disk during a checkpoint write, Ctrl-C or a preemption signal."""

import os
import signal

import lightning as L


class KillAfterStep(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def _when_saving(step: int, action) -> None:
    """Wraps torch.save so that writing the checkpoint of optimizer step `step` runs `action(obj, file)`."""
    import torch

    save = torch.save

    def probed(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("global_step") == step and hasattr(f, "write"):
            return action(save, obj, f)
        return save(obj, f, *args, **kwargs)

    torch.save = probed


def _half_written(save, obj, f) -> bytes:
    import io

    buffer = io.BytesIO()
    save(obj, buffer)
    data = buffer.getvalue()
    f.write(data[: len(data) // 2])
    f.flush()
    return data


class KillDuringCheckpointWrite(L.Callback):
    """SIGKILL when half of step `step`'s checkpoint is written (flushed to the file)."""

    def __init__(self, step: int):
        self.step = step

    def on_train_start(self, trainer, pl_module) -> None:
        def kill(save, obj, f):
            _half_written(save, obj, f)
            os.kill(os.getpid(), signal.SIGKILL)

        _when_saving(self.step, kill)


class DiskFullAtCheckpoint(L.Callback):
    """The disk fills up halfway through step `step`'s checkpoint: the write raises ENOSPC."""

    def __init__(self, step: int):
        self.step = step

    def on_train_start(self, trainer, pl_module) -> None:
        def full(save, obj, f):
            import errno

            _half_written(save, obj, f)
            raise OSError(errno.ENOSPC, "No space left on device")

        _when_saving(self.step, full)


class SignalAtStep(L.Callback):
    """Sends this process `signum` (by name: SIGINT, SIGTERM) `times` times when optimizer step `step` begins,
    as a terminal's Ctrl-C or a scheduler's preemption would."""

    def __init__(self, step: int, signum: str = "SIGINT", times: int = 1):
        self.step, self.signum, self.times = step, getattr(signal, signum), times

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)
