"""A callback for tests that dies as a crash does (SIGKILL, no cleanup) after a given optimizer step."""

import os
import signal

import lightning as L


class KillAfterStep(L.Callback):
    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
