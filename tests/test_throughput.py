"""spot.throughput: real tokens counted in every batch layout, per optimizer step, the first step out of the rate."""

import pytest
import torch

from spot import throughput
from spot.logps import padded_batch
from spot.speed.layout import layout_batch
from spot.throughput import Throughput, batch_tokens

# Two pairs as (token ids, prompt length). Pair 0: chosen 6 tokens, rejected 5, sharing their first 4;
# pair 1: chosen 3, rejected 4, sharing their first 2.
PAIRS = [[([1, 2, 3, 4, 5, 6], 2), ([1, 2, 3, 4, 9], 2)],
         [([7, 8, 5], 1), ([7, 8, 6, 6], 1)]]


def test_padded_counts_the_attention_mask_not_the_padding():
    batch = padded_batch([ex[k] for k in range(2) for ex in PAIRS], pad_id=0)
    assert batch["input_ids"].numel() == 4 * 6  # padded to the longest
    assert batch_tokens(batch) == 6 + 5 + 3 + 4


def test_packed_counts_every_sequence_once():
    batch = layout_batch(PAIRS, pad_id=0, layout="packed")
    assert batch["attention_mask"] is None
    assert batch_tokens(batch) == 6 + 5 + 3 + 4


def test_shared_counts_a_pairs_common_prefix_once():
    batch = layout_batch(PAIRS, pad_id=0, layout="shared")
    # pair 0: prefix 4 + tails 2 and 1; pair 1: prefix 2 + tails 1 and 2; rows padded to width 7
    assert batch_tokens(batch) == (4 + 2 + 1) + (2 + 1 + 2)
    assert batch["input_ids"].numel() > batch_tokens(batch)


def test_single_completions_in_shared_layout_are_packed():
    batch = layout_batch([[ex[0]] for ex in PAIRS], pad_id=0, layout="shared")
    assert batch_tokens(batch) == 6 + 3


class FakeTrainer:
    def __init__(self, global_step: int = 0):
        self.global_step = global_step


class FakeModule:
    """What the callback uses of a LightningModule: its device and `log`, recorded with the trainer's step."""

    device = torch.device("cpu")

    def __init__(self, trainer: FakeTrainer):
        self.trainer, self.logged = trainer, []

    def log(self, name, value, **kwargs):
        self.logged.append({"name": name, "value": value, "step": self.trainer.global_step, **kwargs})


@pytest.fixture
def clock(monkeypatch):
    """time.perf_counter under the test's control: set clock.now."""
    class Clock:
        now = 0.0

    monkeypatch.setattr(throughput.time, "perf_counter", lambda: Clock.now)
    return Clock


def test_tokens_per_optimizer_step_with_accumulation_and_the_first_step_left_out(clock):
    """Accumulation 2, three steps of 10+20, 30+40, 50+60 padded tokens; step 1 ends at t=100 (slow start),
    step 2 at t=101, step 3 at t=103: the rate is (70 + 110) tokens / 3 s, not 210 / 103 s."""
    trainer = FakeTrainer()
    module, cb = FakeModule(trainer), Throughput()
    cb.on_train_start(trainer, module)
    for i, (n, end) in enumerate([(10, None), (20, 100.0), (30, None), (40, 101.0), (50, None), (60, 103.0)]):
        clock.now = end if end is not None else clock.now + 0.5
        if end is not None:
            trainer.global_step += 1  # Lightning steps the optimizer before on_train_batch_end
        cb.on_train_batch_end(trainer, module, None, {"attention_mask": torch.ones(1, n)}, i)
    by = lambda name: [(m["step"], m["value"]) for m in module.logged if m["name"] == name]
    assert by("train/tokens") == [(1, 30.0), (2, 100.0), (3, 210.0)]
    assert by("train/tokens_per_s") == [(2, 70 / 1), (3, (70 + 110) / 3)]
    assert by("train/peak_mem_gb") == []  # CPU: no GPU memory to report
    assert {m["reduce_fx"] for m in module.logged} == {"sum"} and all(m["on_step"] for m in module.logged)


def test_a_resumed_run_counts_from_its_checkpoints_step(clock):
    trainer = FakeTrainer(global_step=40)
    module, cb = FakeModule(trainer), Throughput()
    cb.on_train_start(trainer, module)
    trainer.global_step = 41
    cb.on_train_batch_end(trainer, module, None, {"attention_mask": torch.ones(2, 3)}, 0)
    assert [(m["name"], m["value"]) for m in module.logged] == [("train/tokens", 6.0)]
