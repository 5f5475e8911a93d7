"""Pair and completion files -> tokenized, prompt-masked batches (the LightningDataModule).

Row format (jsonl, one object a line, or a `datasets` dataset saved with save_to_disk / a hub id):
    {"prompt": str, "chosen": str, "rejected": str, ...metadata}     pairs, for DPO / BCE / BCO
    {"prompt": str, "chosen": str}  or  {"prompt": str, "completion": str}   single completions, for SFT-type
A malformed row stops the run with one line naming the file, the line and the field.
"""

from __future__ import annotations

import logging

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from spot.chat import ChatFormat
from spot.errors import DataError, check, check_type
from spot.logps import padded_batch
from spot.logs import lightning_prints_once
from spot.rows import check_exists, iter_rows, text_field
from spot.speed.layout import LAYOUTS, layout_batch

log = logging.getLogger(__name__)
lightning_prints_once()  # every training run imports this module after Hydra's logging and before its Trainer


def read_examples(path: str, pairs: bool) -> list[dict]:
    """Validated rows: prompt + chosen (+ rejected when `pairs`). `completion` stands in for `chosen`."""
    needed = ("prompt", "chosen", "rejected") if pairs else ("prompt", "chosen")
    rows = []
    for where, row in iter_rows(path, key="data.path"):
        if not pairs and "chosen" not in row and "completion" in row:
            row = {**row, "chosen": row["completion"]}
        rows.append({key: text_field(where, key, row.get(key)) for key in needed})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def encode(chat: ChatFormat, prompt: str, completion: str, max_length: int, max_prompt_length: int
           ) -> tuple[list[int], int]:
    """(token ids, prompt length). Long prompts keep their end; long completions lose their tail."""
    p = chat.prompt_ids(prompt)[-max_prompt_length:]
    c = chat.completion_ids(completion)[: max(0, max_length - len(p))]
    return p + c, len(p)


class EpochShuffle(Sampler[int]):
    """A fresh permutation each epoch, drawn from (seed, epoch) alone.

    Lightning calls `set_epoch` before every epoch, so a run resumed from an epoch-end checkpoint sees the same
    order as an uninterrupted one (a shared torch.Generator would restart from epoch 0's order).
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class LengthGroupedShuffle(EpochShuffle):
    """EpochShuffle, then sorted by length inside windows of `group` batches, so a batch's rows are alike in
    length and padding shrinks; batches still mix the whole data set across windows and epochs.

    Like EpochShuffle the order depends on (seed, epoch) alone, so a resumed run sees the same batches.
    `batch_size` is the global batch (all ranks together), so N ranks get the windows one process would.
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group: int = 32):
        super().__init__(len(lengths), seed)
        self.lengths, self.window = lengths, batch_size * group

    def __iter__(self):
        order = list(super().__iter__())
        windows = [order[s : s + self.window] for s in range(0, len(order), self.window)]
        return iter([i for w in windows for i in sorted(w, key=lambda i: -self.lengths[i])])


class RankShard(DistributedSampler):
    """This rank's share of every global batch of an epoch's order (EpochShuffle or LengthGroupedShuffle).

    The order is cut into global batches of `batch_size * num_replicas` examples, and rank r takes every
    N-th example of each, r first: the N ranks' batches of step k together are exactly step k's batch of one
    process with a batch of `batch_size * N`, whatever N is, and every example is seen once an epoch. A last
    global batch shorter than N would leave a rank without a batch (and the others waiting for it at the
    gradient all-reduce): its examples are skipped that epoch, with a warning. A last global batch of m >= N
    examples gives ranks m // N or m // N + 1; the gradient all-reduce then weighs ranks, not examples, alike.

    A DistributedSampler, so that Lightning keeps it (it wraps any other sampler in a DistributedSamplerWrapper,
    which pads the data to a multiple of N by repeating examples) and calls its `set_epoch`.
    """

    def __init__(self, order: EpochShuffle, batch_size: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(range(len(order)), num_replicas=num_replicas, rank=rank, shuffle=False)
        self.order, self.batch_size = order, batch_size
        self.global_batch = batch_size * num_replicas
        tail = len(order) % self.global_batch
        self.skipped = tail if tail < num_replicas else 0
        if self.skipped and rank == 0:
            log.warning("%d examples of %d are skipped each epoch: the last global batch would leave ranks "
                        "without examples (change data.batch_size or the number of devices)",
                        self.skipped, len(order))

    resume: tuple[int, int] | None = None  # (epoch, batches already trained in it), from a mid-epoch checkpoint

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.order.set_epoch(epoch)

    def __iter__(self):
        order = list(self.order)[: len(self.order) - self.skipped]
        done = 0
        if self.resume is not None and self.resume[0] == self.epoch:  # the epoch a checkpoint stopped in
            done, self.resume = self.resume[1], None
        for start in range(done * self.global_batch, len(order), self.global_batch):
            yield from order[start : start + self.global_batch][self.rank :: self.num_replicas]

    def __len__(self) -> int:
        n = len(self.order) - self.skipped
        full, tail = divmod(n, self.global_batch)
        return full * self.batch_size + len(range(self.rank, tail, self.num_replicas))


class _WithReference(torch.utils.data.Dataset):
    """(index, example, its precomputed reference log-probs or None): the index goes into the batch, so that
    what a rank trained on can be checked."""

    def __init__(self, examples: list, ref_logps: torch.Tensor | None):
        self.examples, self.ref_logps = examples, ref_logps

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int):
        return i, self.examples[i], None if self.ref_logps is None else self.ref_logps[i]


class PairDataModule(L.LightningDataModule):
    """Loads a pair (or completion) file, formats prompts with the run's ChatFormat, tokenizes, masks prompts.

    With `pairs=True` a batch of B examples is 2B sequences, chosen first then rejected, so that the module
    runs both through the model in one forward. `layout` (padded, packed, shared; spot.speed.layout) decides how
    they are laid out in rows, `group_by_length` batches examples of similar length together. Once
    `attach_reference` has been given precomputed reference log-probs (spot.refcache), every batch carries them
    as `ref_logps` (2B,), in the same chosen-then-rejected order, and every batch carries `index` (B,), the
    examples' positions in their split. `batch_size` is per rank: N ranks train on global batches of
    N x batch_size, split between them by RankShard.
    """

    def __init__(self, path: str, chat: ChatFormat, pairs: bool, batch_size: int = 8, max_length: int = 512,
                 max_prompt_length: int = 256, val_fraction: float = 0.0, seed: int = 0, num_workers: int = 0,
                 make_command: str = "", layout: str = "padded", group_by_length: bool = False):
        super().__init__()
        check(layout in LAYOUTS, "speed.layout", f"use one of {', '.join(LAYOUTS)}, got {layout!r}")
        for key, value in (("batch_size", batch_size), ("max_length", max_length),
                           ("max_prompt_length", max_prompt_length)):
            check_type(value, int, f"data.{key}")
            check(value >= 1, f"data.{key}", f"must be at least 1, got {value}")
        check_type(val_fraction, (int, float), "data.val_fraction")
        check(0 <= val_fraction < 1, "data.val_fraction", f"must be in [0, 1), got {val_fraction}")
        self.layout, self.group_by_length = layout, group_by_length
        self.ref_logps: dict[str, torch.Tensor | None] = {"train": None, "val": None}
        self.path, self.chat, self.tokenizer, self.pairs = path, chat, chat.tokenizer, pairs
        self.batch_size, self.max_length, self.max_prompt_length = batch_size, max_length, max_prompt_length
        self.val_fraction, self.seed = val_fraction, seed
        self.num_workers, self.make_command = num_workers, make_command
        self.train_set: list[list[tuple[list[int], int]]] = []
        self._train_sampler: RankShard | None = None
        self._resume: tuple[int, int] | None = None  # (epoch, batches trained in it) from a checkpoint
        self.val_set: list[list[tuple[list[int], int]]] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_set:
            return
        check_exists(self.path, "data.path", self.make_command)
        fields = ("chosen", "rejected") if self.pairs else ("chosen",)
        examples, dropped = [], 0
        for row in read_examples(self.path, self.pairs):
            seqs = [encode(self.chat, row["prompt"], row[f], self.max_length, self.max_prompt_length)
                    for f in fields]
            if any(len(ids) <= n_prompt for ids, n_prompt in seqs):
                dropped += 1  # the prompt alone fills max_length: nothing left to score
                continue
            examples.append(seqs)
        if dropped:
            log.warning("%s: %d rows dropped: no completion token fits in data.max_length", self.path, dropped)
        g = torch.Generator().manual_seed(self.seed)
        order = torch.randperm(len(examples), generator=g).tolist()
        n_val = int(len(examples) * self.val_fraction)
        self.val_set = [examples[i] for i in order[:n_val]]
        self.train_set = [examples[i] for i in order[n_val:]]

    def attach_reference(self, split: str, ref_logps: torch.Tensor) -> None:
        """Precomputed reference log-probs for `split` ("train" or "val"): (n examples, sequences per example)."""
        examples = self.train_set if split == "train" else self.val_set
        if ref_logps.shape[0] != len(examples):
            raise ValueError(f"{split}: {ref_logps.shape[0]} reference rows for {len(examples)} examples")
        self.ref_logps[split] = ref_logps

    def _collate(self, batch: list[tuple[int, list[tuple[list[int], int]], torch.Tensor | None]]) -> dict:
        examples = [ex for _, ex, _ in batch]
        if self.layout == "padded":
            # chosen of every example first, then rejected: the module splits the forward at B
            flat = [ex[k] for k in range(len(examples[0])) for ex in examples]
            out = padded_batch(flat, self.tokenizer.pad_token_id)
        else:
            out = layout_batch(examples, self.tokenizer.pad_token_id, self.layout)
        out["index"] = torch.tensor([i for i, _, _ in batch])  # (B,) positions in the split; not a model input
        if batch[0][2] is not None:
            out["ref_logps"] = torch.stack([ref for _, _, ref in batch]).t().flatten()  # (2B,) chosen, then rejected
        return out

    def _sampler(self) -> RankShard:
        """Every rank's share of the same global batches (RankShard); one process is the case N = 1."""
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        if not self.group_by_length:
            order = EpochShuffle(len(self.train_set), self.seed)
        else:
            lengths = [sum(len(ids) for ids, _ in ex) for ex in self.train_set]
            order = LengthGroupedShuffle(lengths, self.batch_size * world, self.seed)
        return RankShard(order, self.batch_size, num_replicas=world, rank=rank)

    def train_dataloader(self) -> DataLoader:
        self._train_sampler = self._sampler()
        self._train_sampler.resume = self._resume
        return DataLoader(_WithReference(self.train_set, self.ref_logps["train"]), batch_size=self.batch_size,
                          sampler=self._train_sampler, collate_fn=self._collate, num_workers=self.num_workers,
                          drop_last=False)

    # Mid-epoch resume. Lightning saves this in every checkpoint and gives it back before the training loader
    # is built: the epoch and how many of its batches were trained (Lightning's own count: a batch fetched
    # ahead and not yet trained is not counted). The resumed epoch's sampler then starts after them, so a run
    # killed mid-epoch trains on the batches an uninterrupted run trains on. (A loader's own state_dict would
    # not do: Lightning builds the loader for estimated_stepping_batches before it restores loader states, and
    # then never restores them.)
    def state_dict(self) -> dict:
        if self.trainer is None or self._train_sampler is None:
            return {}
        return {"epoch": self._train_sampler.epoch,
                "batches": self.trainer.fit_loop.epoch_loop.batch_progress.current.processed}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self._resume = (state["epoch"], state["batches"])
            if self._train_sampler is not None:
                self._train_sampler.resume = self._resume

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_WithReference(self.val_set, self.ref_logps["val"]), batch_size=self.batch_size,
                          collate_fn=self._collate, num_workers=self.num_workers)
