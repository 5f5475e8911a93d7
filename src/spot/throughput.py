"""Tokens trained per second and peak GPU memory, logged as `train/*` metrics (train.py adds the callback).

    train/tokens          real (non-padding) tokens trained so far, every micro-batch of every step counted
    train/tokens_per_s    steady-state rate: tokens of steps 2..k over the wall seconds from the end of step 1
                          to the end of step k. Step 1 is left out of the rate (it pays for CUDA kernels'
                          first launches, allocator growth, DeepSpeed's buffers) and so is not logged at step 1.
    train/peak_mem_gb     torch.cuda.max_memory_allocated so far (the reference pre-pass included), CUDA only

Across ranks tokens and rates are summed, memory is the largest rank's. A token is a position the model runs:
in the `padded` layout the 1s of `attention_mask`; in `packed` and `shared` (spot.speed.layout) the lengths in
the segment table, so a shared prefix is one copy and the padded tail of a row is nothing. These are the tokens
whose FLOPs a model-FLOPs-utilisation figure counts (benchmarks/gpu_check.py).
"""

from __future__ import annotations

import time

import lightning as L
import torch


def batch_tokens(batch: dict) -> int:
    """Real tokens in one batch of any layout (spot.data.PairDataModule)."""
    segments = batch.get("segments")
    if segments is not None:  # (units, 5): row, start, trunk, tail1, tail2
        return int(segments[:, 2:].sum())
    mask = batch.get("attention_mask")
    if mask is not None and mask.dim() == 2:  # (B, T), 1 on real tokens
        return int(mask.sum())
    return int(batch["input_ids"].numel())  # no mask: nothing is padding


class Throughput(L.Callback):
    """Counts tokens per optimizer step (all its accumulated micro-batches) and logs the rates above."""

    def __init__(self) -> None:
        self.tokens = 0  # all steps
        self.steady_tokens = 0  # steps after the first
        self.steady_from: float | None = None  # when step 1 ended
        self.last_step = -1

    def _now(self, pl_module: L.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)  # the step's kernels done, not just queued
        return time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.last_step = trainer.global_step  # a resumed run starts counting at its checkpoint's step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        n = batch_tokens(batch)
        self.tokens += n
        if self.steady_from is not None:
            self.steady_tokens += n
        if trainer.global_step == self.last_step:  # a micro-batch inside an accumulated step
            return
        self.last_step = trainer.global_step
        now = self._now(pl_module)
        metrics = {"train/tokens": float(self.tokens)}
        if self.steady_from is None:
            self.steady_from = now
        elif now > self.steady_from:
            metrics["train/tokens_per_s"] = self.steady_tokens / (now - self.steady_from)
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=True, on_epoch=False, reduce_fx="sum", sync_dist=True)
        if pl_module.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(pl_module.device) / 1e9
            pl_module.log("train/peak_mem_gb", peak, on_step=True, on_epoch=False, reduce_fx="max", sync_dist=True)
