"""Packed and prefix-shared batches: the same log-probs, gradients and training curve as padded ones."""


import lightning as L
import pytest
import torch

from spot import losses
from spot.chat import ChatFormat
from spot.data import LengthGroupedShuffle, PairDataModule
from spot.errors import ConfigError
from spot.logps import sequence_logps
from spot.models import load_model, load_tokenizer
from spot.module import OptimConfig, SPoTModule
from spot.reference import Reference
from spot.speed.layout import first_fit_rows, layout_batch, pair_unit


def first_batch(micro_model_dir, path, layout, pairs=True, batch_size=4):
    dm = PairDataModule(str(path), ChatFormat(load_tokenizer(micro_model_dir)), pairs=pairs, batch_size=batch_size,
                        layout=layout)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    batch.pop("index")  # which examples: the module drops it, sequence_logps takes model inputs only
    return batch


def logps_and_grads(model, batch):
    model.zero_grad()
    total, n = sequence_logps(model, **batch)
    (total * torch.linspace(0.5, 1.5, total.shape[0])).sum().backward()  # a different weight per sequence
    return total.detach(), n, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("layout", ["packed", "shared"])
def test_layouts_match_padded_log_probs_and_gradients(micro_model_dir, toy_files, layout, attn):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(micro_model_dir, attn_implementation=attn)
    want = logps_and_grads(model, first_batch(micro_model_dir, toy_files["pairs"], "padded"))
    got = logps_and_grads(model, first_batch(micro_model_dir, toy_files["pairs"], layout))
    assert torch.equal(got[1], want[1])  # same completion token counts, sequence by sequence
    assert torch.allclose(got[0], want[0], atol=1e-4)
    for a, b in zip(got[2], want[2]):
        assert torch.allclose(a, b, atol=1e-4)


def test_single_completions_pack_too(micro_model_dir, toy_files):
    model = load_model(micro_model_dir)
    want = sequence_logps(model, **first_batch(micro_model_dir, toy_files["rft"], "padded", pairs=False))
    got = sequence_logps(model, **first_batch(micro_model_dir, toy_files["rft"], "shared", pairs=False))
    assert torch.allclose(got[0], want[0], atol=1e-4) and torch.equal(got[1], want[1])


def test_shared_layout_stores_the_common_prefix_once_and_hides_each_tail_from_the_other():
    prompt = [7, 7, 7]
    chosen, rejected = (prompt + [1, 2, 3, 4], 3), (prompt + [1, 2, 9], 3)
    unit = pair_unit(chosen, rejected, 0, 1)
    assert unit.ids == [7, 7, 7, 1, 2, 3, 4, 9]  # prefix 7 7 7 1 2, chosen tail 3 4, rejected tail 9
    assert unit.positions == [0, 1, 2, 3, 4, 5, 6, 5]  # the rejected tail continues from the prefix
    # rejected token 9 (index 5 of its sequence) is predicted from the prefix's last token, not from chosen's 4
    assert (4, 9, 1) in unit.targets and (4, 3, 0) in unit.targets
    batch = layout_batch([[chosen, rejected]], pad_id=0, layout="shared")
    assert batch["segments"].tolist() == [[0, 0, 5, 2, 1]]  # row 0 from 0: trunk 5, chosen tail 2, rejected 1
    assert batch["input_ids"].numel() == 8 < len(chosen[0]) + len(rejected[0])


def test_segment_attention_equals_a_dense_tree_mask():
    """Unit by unit (causal kernels) against one dense mask encoding the same visibility."""
    import torch.nn.functional as F

    from spot.speed.attention import segment_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 12, 8, generator=g) for _ in range(3))
    k, v = k[:, :2], v[:, :2]  # grouped-query attention: 2 key/value heads for 4 query heads
    segments = [(0, 0, 3, 2, 2), (0, 7, 4, 0, 0), (1, 0, 10, 0, 0)]  # a pair, a sequence; a longer sequence
    visible = torch.zeros(2, 12, 12, dtype=torch.bool)
    for row, start, trunk, t1, t2 in segments:
        end = start + trunk + t1
        visible[row, start:end, start:end] = torch.ones(end - start, end - start).tril().bool()
        visible[row, end : end + t2, start : start + trunk] = True
        visible[row, end : end + t2, end : end + t2] = torch.ones(t2, t2).tril().bool()
    visible |= torch.eye(12, dtype=torch.bool)  # padding rows: anything finite
    dense = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1),
                                           attn_mask=visible[:, None]).transpose(1, 2)
    module = torch.nn.Module()
    got, _ = segment_attention(module, q, k, v, None, spot_segments=segments)
    for row, start, trunk, t1, t2 in segments:
        span = slice(start, start + trunk + t1 + t2)
        assert torch.allclose(got[row, span], dense[row, span], atol=1e-5)
    assert got[1, 10:].abs().sum() == 0  # padding left at zero


def test_first_fit_decreasing_fills_rows():
    rows = first_fit_rows([5, 3, 2, 4, 1], width=5)
    assert sorted(sorted(r) for r in rows) == [[0], [1, 2], [3, 4]]


def test_length_grouped_order_is_a_permutation_fixed_by_seed_and_epoch():
    lengths = [int(x) for x in torch.randint(10, 500, (200,), generator=torch.Generator().manual_seed(0))]
    a, b = LengthGroupedShuffle(lengths, 4, seed=1, group=8), LengthGroupedShuffle(lengths, 4, seed=1, group=8)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b) and sorted(a) == list(range(200))
    b.set_epoch(3)
    assert list(a) != list(b)

    def padding(order):
        batches = [order[i : i + 4] for i in range(0, len(order), 4)]
        return sum(4 * max(lengths[i] for i in bt) - sum(lengths[i] for i in bt) for bt in batches)

    shuffled = list(torch.randperm(200, generator=torch.Generator().manual_seed(1)).tolist())
    assert padding(list(a)) < padding(shuffled) / 3


class StepLosses(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def test_training_curve_is_the_same_in_every_layout(tmp_path, micro_model_dir, toy_files):
    curves = {}
    for layout in ("padded", "packed", "shared"):
        module = SPoTModule(load_model(micro_model_dir), losses.Objective(losses.dpo, beta=0.1),
                            reference=Reference.live(load_model(micro_model_dir)), optim=OptimConfig(lr=1e-2))
        dm = PairDataModule(str(toy_files["pairs"]), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True,
                            batch_size=4, layout=layout)
        rec = StepLosses()
        L.Trainer(accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False,
                  enable_checkpointing=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                  callbacks=[rec]).fit(module, datamodule=dm)
        curves[layout] = rec.losses
    assert len(curves["padded"]) == 4
    assert curves["packed"] == pytest.approx(curves["padded"], abs=1e-5)
    assert curves["shared"] == pytest.approx(curves["padded"], abs=1e-5)


def test_unknown_layout_names_the_key(micro_model_dir, toy_files):
    with pytest.raises(ConfigError, match="speed.layout: use one of padded, packed, shared, got 'compact'"):
        PairDataModule(str(toy_files["pairs"]), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True,
                       layout="compact")
