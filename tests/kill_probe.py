"""Callbacks for tests that stop a training run as the world does: a crash (SIGKILL, no cleanup) after a step or
halfway through writing a checkpoint, a full disk during a checkpoint write, Ctrl-C or a preemption signal."""

import errno
import io
import os
import signal

import lightning as L


class KillAfterStep(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class FailCheckpointWrite(L.Callback):
    """Halfway through writing step `step`'s checkpoint (half its bytes flushed to the file), the process is
    killed (`how: kill`, SIGKILL) or the disk fills up (`how: disk_full`, the write raises ENOSPC)."""

    def __init__(self, step: int, how: str):
        assert how in ("kill", "disk_full"), how
        self.step, self.how = step, how

    def on_train_start(self, trainer, pl_module) -> None:
        import torch

        save = torch.save

        def probed(obj, f, *args, **kwargs):
            if not (isinstance(obj, dict) and obj.get("global_step") == self.step and hasattr(f, "write")):
                return save(obj, f, *args, **kwargs)
            buffer = io.BytesIO()
            save(obj, buffer)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            if self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(errno.ENOSPC, "No space left on device")

        torch.save = probed


class SignalAtStep(L.Callback):
    """Sends this process `signum` (by name: SIGINT, SIGTERM) `times` times when optimizer step `step` begins,
    as a terminal's Ctrl-C or a scheduler's preemption would."""

    def __init__(self, step: int, signum: str = "SIGINT", times: int = 1):
        self.step, self.signum, self.times = step, getattr(signal, signum), times

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), self.signum)


class SignalAtSetup(L.Callback):
    """Sends this process `signum` (by name) when fit sets up, before the base is scored: before any step."""

    def __init__(self, signum: str = "SIGINT"):
        self.signum = getattr(signal, signum)

    def setup(self, trainer, pl_module, stage) -> None:
        os.kill(os.getpid(), self.signum)
