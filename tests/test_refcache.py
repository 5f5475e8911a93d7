"""Precomputed reference log-probs: the same training as a live reference, no reference model, really used."""

import math

import lightning as L
import pytest
import torch

from spot import losses
from spot.chat import ChatFormat
from spot.data import PairDataModule
from spot.models import load_model, load_tokenizer
from spot.module import OptimConfig, SPoTModule
from spot.refcache import ReferenceLogps, cache_key, compute_reference_logps, model_fingerprint
from spot.reference import PRECOMPUTED, Reference


class Record(L.Callback):
    """Per-step losses, and whether each training batch carried reference log-probs."""

    def __init__(self):
        self.losses, self.carried = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.carried.append("ref_logps" in batch)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def fit(micro_model_dir, path, tmp_path, loss=losses.bco, precomputed=True, layout="padded", steps=4,
        cache=None, precision="32-true"):
    fn = losses.Objective(loss, beta=0.1)
    reference = Reference(PRECOMPUTED) if precomputed else Reference.live(load_model(micro_model_dir))
    module = SPoTModule(load_model(micro_model_dir), fn, reference=reference,
                        reward_shift=losses.RewardShift() if loss.needs_shift else None,
                        optim=OptimConfig(lr=1e-2))
    dm = PairDataModule(str(path), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True, batch_size=4, layout=layout,
                        val_fraction=0.2)
    rec, refs = Record(), ReferenceLogps(cache if cache is not None else tmp_path / "cache")
    L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False, precision=precision,
              enable_checkpointing=False, enable_model_summary=False, default_root_dir=str(tmp_path),
              callbacks=[rec, refs]).fit(module, datamodule=dm)
    return module, rec, refs


@pytest.mark.parametrize("layout", ["padded", "shared"])
def test_cached_reference_trains_like_the_live_reference_step_by_step(tmp_path, micro_model_dir, toy_files,
                                                                      layout):
    live, live_rec, _ = fit(micro_model_dir, toy_files["pairs"], tmp_path / "live", precomputed=False)
    cached, rec, refs = fit(micro_model_dir, toy_files["pairs"], tmp_path / "cached", layout=layout)
    assert cached.reference.model is None  # no reference model existed at any point of this run
    assert all(rec.carried) and not any(live_rec.carried)
    assert refs.report["train"]["source"] == "computed" and refs.report["val"]["source"] == "computed"
    assert rec.losses == pytest.approx(live_rec.losses, abs=1e-5)
    assert cached.reward_shift.value.item() == pytest.approx(live.reward_shift.value.item(), abs=1e-5)
    for a, b in zip(cached.policy.parameters(), live.policy.parameters()):
        # Adam normalises each element's step: where a gradient is ~0, float noise can move it by up to lr/10
        assert torch.allclose(a, b, atol=1e-3)


def test_second_run_reads_the_cache_and_never_scores_a_reference(tmp_path, micro_model_dir, toy_files):
    fit(micro_model_dir, toy_files["pairs"], tmp_path / "a", steps=1, cache=tmp_path / "cache")
    calls = []
    module = SPoTModule(load_model(micro_model_dir), losses.Objective(losses.dpo, beta=0.1),
                        optim=OptimConfig(lr=1e-2), reference=Reference(PRECOMPUTED))
    module.policy.base_model.register_forward_hook(lambda *a: calls.append(module.trainer.global_step))
    dm = PairDataModule(str(toy_files["pairs"]), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True, batch_size=4,
                        val_fraction=0.2)
    refs = ReferenceLogps(tmp_path / "cache")
    L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False, enable_checkpointing=False,
              enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
              callbacks=[refs]).fit(module, datamodule=dm)
    assert refs.report["train"]["source"] == "cache"
    assert calls == [0, 1]  # one policy forward per training step: nothing before training, no extra pass


def test_tampered_cache_changes_the_loss_so_the_file_is_what_is_used(tmp_path, micro_model_dir, toy_files):
    """At step 1 the policy equals the reference, so DPO's loss is log 2 with true reference log-probs.

    Adding 10 to every cached chosen reference log-prob lowers each chosen reward by beta * 10 = 1, so if (and
    only if) the file is used, the first loss is -log sigmoid(-1) = log(1 + e) = 1.3133.
    """
    _, rec, refs = fit(micro_model_dir, toy_files["pairs"], tmp_path / "a", loss=losses.dpo, steps=1,
                       cache=tmp_path / "cache")
    assert rec.losses[0] == pytest.approx(math.log(2), abs=1e-5)
    saved = torch.load(refs.report["train"]["path"], weights_only=True)
    saved["ref_logps"][:, 0] += 10.0
    torch.save(saved, refs.report["train"]["path"])
    _, rec, refs = fit(micro_model_dir, toy_files["pairs"], tmp_path / "b", loss=losses.dpo, steps=1,
                       cache=tmp_path / "cache")
    assert refs.report["train"]["source"] == "cache"
    assert rec.losses[0] == pytest.approx(math.log(1 + math.e), abs=1e-4)


def test_reference_pass_runs_under_the_training_precision(tmp_path, micro_model_dir, toy_files):
    """Under bf16 autocast the policy's first log-probs carry bf16 rounding; scored in fp32, the cached
    reference would not, and the step-1 rewards would be noise instead of 0 (DPO loss log 2)."""
    _, rec, refs = fit(micro_model_dir, toy_files["pairs"], tmp_path, loss=losses.dpo, steps=1,
                       precision="bf16-mixed")
    assert rec.losses[0] == pytest.approx(math.log(2), abs=1e-6)  # scored in fp32: off by ~5e-5


def test_key_follows_the_weights_and_the_tokens(micro_model_dir):
    model = load_model(micro_model_dir)
    examples = [[([1, 2, 3, 4], 2), ([1, 2, 5], 2)]]
    base = cache_key(model_fingerprint(model), examples)
    assert cache_key(model_fingerprint(load_model(micro_model_dir)), examples) == base  # stable across loads
    assert cache_key(model_fingerprint(model), [[([1, 2, 3, 4], 1), ([1, 2, 5], 2)]]) != base  # prompt length
    assert cache_key(model_fingerprint(model), [[([1, 2, 3, 6], 2), ([1, 2, 5], 2)]]) != base  # a token
    with torch.no_grad():
        next(model.parameters())[0, 0] += 1e-3
    assert cache_key(model_fingerprint(model), examples) != base


def test_precompute_matches_scoring_each_sequence_alone(micro_model_dir):
    from spot.logps import sequence_logps

    model = load_model(micro_model_dir)
    examples = [[([5, 6, 7, 8, 9, 10], 2), ([5, 6, 7], 2)], [([5, 9], 1), ([5, 6, 7, 8], 3)]]
    got = compute_reference_logps(model, examples, pad_id=0, max_tokens=8)  # forces several small batches
    for i, ex in enumerate(examples):
        for j, (ids, n_prompt) in enumerate(ex):
            mask = torch.zeros(1, len(ids), dtype=torch.bool)
            mask[0, n_prompt:] = True
            alone, _ = sequence_logps(model, torch.tensor([ids]), torch.ones(1, len(ids)), mask)
            assert got[i, j].item() == pytest.approx(alone.item(), abs=1e-5)


def test_a_batch_without_reference_log_probs_is_an_error_not_a_fallback(micro_model_dir, toy_files):
    module = SPoTModule(load_model(micro_model_dir), losses.Objective(losses.dpo, beta=0.1),
                        reference=Reference(PRECOMPUTED))
    dm = PairDataModule(str(toy_files["pairs"]), ChatFormat(load_tokenizer(micro_model_dir)), pairs=True, batch_size=4)
    dm.setup()
    with pytest.raises(RuntimeError, match="carries no ref_logps"):
        module.forward_logps(next(iter(dm.train_dataloader())))
    with pytest.raises(ValueError, match="needs a reference model, precomputed reference log-probs or a policy"):
        SPoTModule(load_model(micro_model_dir), losses.Objective(losses.dpo, beta=0.1))
