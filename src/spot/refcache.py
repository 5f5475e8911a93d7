"""Reference log-probs computed once before training and cached on disk: no reference model while training.

docs/METHOD.md ("Training recipe"): reference log-probs are computed once before training, then the reference model
is freed. Here the pass runs in the `ReferenceLogps` callback's `setup` hook, after the process group exists and
before any checkpoint is restored, so:
  - the policy itself is scored: before its first update it *is* the
    reference (both load from model.path), so the reference model is never loaded at all;
  - on N ranks each scores every N-th example and the results are all-gathered (an 8-GPU run pays 1/8);
  - under DeepSpeed the model is not yet wrapped, so ZeRO-3 does not have to shard a second model.

The cache file is keyed by the weights' identity (`model_key`: file metadata or hub commit, from train.py;
else a SHA-256 of the model's tensors) and by a SHA-256 of the exact token ids and prompt lengths of
every example, in order: the tokenizer, chat template, truncation and data all enter through the tokens they
produce, so any change to them (or to the weights) selects a different file, never a stale one.

    cache: <cache_dir>/<key>.pt = {"version", "key", "ref_logps": (n examples, sequences per example), "seconds"}
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from pathlib import Path

import lightning as L
import torch

from spot.logps import padded_batch, sequence_logps
from spot.progress import Progress
from spot.reference import PRECOMPUTED

log = logging.getLogger(__name__)

CACHE_VERSION = 1  # bump when the definition of a sequence log-prob changes (spot.logps)
Example = list[tuple[list[int], int]]  # [(ids, prompt length)] for chosen (and rejected)


def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer: name, dtype, shape and bytes (about 1 s per GB)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_key(model_hash: str, examples: list[Example]) -> str:
    h = hashlib.sha256(f"spot-ref-logps-v{CACHE_VERSION}|{model_hash}|".encode())
    for ex in examples:
        for ids, n_prompt in ex:
            h.update(f"{n_prompt}:{','.join(map(str, ids))};".encode())
        h.update(b"|")
    return h.hexdigest()[:32]


@torch.no_grad()
def compute_reference_logps(model: torch.nn.Module, examples: list[Example], pad_id: int,
                            device: torch.device | str = "cpu", max_tokens: int = 16384) -> torch.Tensor:
    """(n, k) summed completion log-probs of each example's k sequences under `model`, in eval mode.

    Sequences are sorted by length and batched up to `max_tokens` (rows x width), so padding is nearly nil
    and no layout-specific attention support is needed.
    """
    seqs = [(i, j, s) for i, ex in enumerate(examples) for j, s in enumerate(ex)]
    seqs.sort(key=lambda x: len(x[2][0]))
    out = torch.zeros(len(examples), len(examples[0]) if examples else 0, dtype=torch.float32)
    was_training = model.training
    model.eval()
    bar = Progress(len(seqs), "reference log-probs", unit="sequences")
    start = 0
    while start < len(seqs):
        end = start + 1
        # sorted ascending: the last row sets the width; grow while rows x width fits the budget
        while end < len(seqs) and (end + 1 - start) * len(seqs[end][2][0]) <= max_tokens:
            end += 1
        chunk = seqs[start:end]
        batch = {k: v.to(device) for k, v in padded_batch([s for _, _, s in chunk], pad_id).items()}
        logp, _ = sequence_logps(model, **batch)
        for (i, j, _), value in zip(chunk, logp.float().cpu()):
            out[i, j] = value
        bar.update(len(chunk))
        start = end
    bar.close()
    model.train(was_training)
    return out


def _precision_context(precision: str, device: torch.device):
    """The autocast that training runs under, so that at step 0 the policy's log-probs equal the cached ones
    up to summation order (bf16-true / DeepSpeed bf16 cast the weights instead: autocast is the nearest match)."""
    dtype = torch.bfloat16 if precision.startswith("bf16") else torch.float16 if precision.startswith("16") else None
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def _is_distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _from_rank0(obj):
    """rank 0's value of `obj` on every rank (so that all ranks take the same branch)."""
    if not _is_distributed():
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def sharded_reference_logps(model, examples: list[Example], pad_id: int, device, max_tokens: int) -> torch.Tensor:
    """compute_reference_logps with every N-th example on each of N ranks, then all-gathered."""
    if not _is_distributed():
        return compute_reference_logps(model, examples, pad_id, device, max_tokens)
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    mine = list(range(rank, len(examples), world))
    part = compute_reference_logps(model, [examples[i] for i in mine], pad_id, device, max_tokens)
    gathered: list = [None] * world
    torch.distributed.all_gather_object(gathered, (mine, part))
    out = torch.zeros(len(examples), len(examples[0]), dtype=torch.float32)
    for idx, values in gathered:
        if idx:
            out[idx] = values
    return out


class ReferenceLogps(L.Callback):
    """Attaches reference log-probs to the data module's train and val examples before training starts.

    Only for a module whose `reference` is precomputed (spot.reference). Loads them from `cache_dir` when the
    key matches, else computes them (sharded over ranks) and saves them. The model scored is the policy, still at
    its initial weights in `setup`. `self.report` says, per split, where they came from and how long it took.
    """

    def __init__(self, cache_dir: str | Path | None = ".cache/spot/ref_logps", max_tokens: int = 16384,
                 model_key: str | None = None):
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.model_key = model_key  # the weights' identity when known (spot.models.weights_key): no hashing
        self.max_tokens = max_tokens
        self.report: dict[str, dict] = {}

    def setup(self, trainer: L.Trainer, pl_module, stage: str) -> None:
        if pl_module.reference.kind != PRECOMPUTED:  # decided by spot.reference.decide; nothing to attach
            return
        dm, self._precision = trainer.datamodule, trainer.precision
        if dm is None or not hasattr(dm, "attach_reference"):
            raise RuntimeError("precomputed reference log-probs need a PairDataModule: "
                               "call trainer.fit(module, datamodule=...)")
        model = pl_module.policy  # in setup, before the first update, the policy is the reference
        model_hash = self.model_key or _from_rank0(model_fingerprint(model) if trainer.global_rank == 0 else None)
        dtype = next(model.parameters()).dtype
        model_hash += f"|{trainer.precision}|{dtype}"  # bf16 and fp32 log-probs differ: one file each
        device = trainer.strategy.root_device
        for split, examples in (("train", dm.train_set), ("val", dm.val_set)):
            if examples and dm.ref_logps[split] is None:
                ref, self.report[split] = self._load_or_compute(model, examples, dm.tokenizer.pad_token_id,
                                                                model_hash, device, trainer.global_rank)
                dm.attach_reference(split, ref)

    def _load_or_compute(self, model, examples: list[Example], pad_id: int, model_hash: str, device,
                         rank: int) -> tuple[torch.Tensor, dict]:
        key = cache_key(model_hash, examples)
        path = None if self.cache_dir is None else self.cache_dir / f"{key}.pt"
        if _from_rank0(path is not None and path.exists()):
            saved = torch.load(path, weights_only=True)
            log.info("reference log-probs for %d examples from %s", len(examples), path)
            return saved["ref_logps"], {"source": "cache", "path": str(path), "seconds": 0.0}
        t0 = time.time()
        model.to(device)
        with _precision_context(str(self._precision), device):
            ref = sharded_reference_logps(model, examples, pad_id, device, self.max_tokens)
        seconds = time.time() - t0
        log.info("reference log-probs for %d examples computed in %.1f s", len(examples), seconds)
        if path is not None and rank == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            torch.save({"version": CACHE_VERSION, "key": key, "ref_logps": ref, "seconds": seconds}, tmp)
            os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
        return ref, {"source": "computed", "path": str(path), "seconds": seconds}
