"""The LightningModule on a micro model: golden curves, resume, and what a loss skips."""


import lightning as L
import pytest
import torch

from spot import losses
from spot.chat import ChatFormat
from spot.data import PairDataModule
from spot.models import load_model, load_tokenizer
from spot.module import OptimConfig, SPoTModule
from spot.reference import Reference


class StepLosses(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def make(micro_model_dir, path, loss, batch_size=4, shift_mode="cumulative"):
    fn = losses.Objective(loss, beta=0.1 if loss.needs_reference else None)
    policy = load_model(micro_model_dir)
    ref = load_model(micro_model_dir) if loss.needs_reference else None
    shift = losses.RewardShift(shift_mode) if loss.needs_shift else None
    module = SPoTModule(policy, fn, reference=Reference.live(ref) if ref is not None else Reference(),
                        reward_shift=shift, optim=OptimConfig(lr=1e-2))
    dm = PairDataModule(str(path), ChatFormat(load_tokenizer(micro_model_dir)), pairs=loss.needs_pairs,
                        batch_size=batch_size)
    return module, dm


def trainer(tmp_path, **kw):
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=str(tmp_path), **kw)


def weights(module):
    return torch.cat([p.detach().flatten() for p in module.policy.parameters()])


class StopAfterFirstEpoch(L.Callback):
    """Simulates an interruption: the run is configured for 2 epochs but ends after the first."""

    def on_train_epoch_end(self, trainer, pl_module):
        trainer.should_stop = True


class StepGrads(L.Callback):
    def __init__(self):
        self.grads = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.grads.append(torch.cat([p.grad.flatten() for p in pl_module.policy.parameters()]))


def test_batch_1_x_accumulation_4_equals_batch_4(tmp_path, micro_model_dir, toy_files):
    """Same pairs, same order: the accumulated gradient of 4 micro-batches is the batch-of-4 gradient.

    Gradients, not weights, are compared: Adam is invariant to a constant loss scale, so a wrong
    accumulation scale would leave weights unchanged while gradients show it.
    """
    runs = []
    for batch_size, accumulate in ((4, 1), (1, 4)):
        module, dm = make(micro_model_dir, toy_files["pairs"], losses.dpo, batch_size=batch_size)
        rec = StepGrads()
        trainer(tmp_path, max_steps=3, accumulate_grad_batches=accumulate, enable_checkpointing=False,
                callbacks=[rec]).fit(module, datamodule=dm)
        runs.append(rec.grads)
    assert len(runs[0]) == len(runs[1]) == 3
    for a, b in zip(*runs):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("shift_mode", ["cumulative", "ema"])
def test_resume_continues_with_the_same_losses_and_reward_shift(tmp_path, micro_model_dir, toy_files,
                                                                 shift_mode):
    full, rec_full = make(micro_model_dir, toy_files["pairs"], losses.bco, shift_mode=shift_mode), StepLosses()
    trainer(tmp_path / "full", max_epochs=2, callbacks=[rec_full], enable_checkpointing=False).fit(
        full[0], datamodule=full[1])

    first, rec_first = make(micro_model_dir, toy_files["pairs"], losses.bco, shift_mode=shift_mode), StepLosses()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path / "a", max_epochs=2, callbacks=[rec_first, ckpt, StopAfterFirstEpoch()]).fit(
        first[0], datamodule=first[1])
    resumed, rec_resumed = make(micro_model_dir, toy_files["pairs"], losses.bco, shift_mode=shift_mode), StepLosses()
    assert resumed[0].reward_shift.count.item() == 0  # state comes from the checkpoint, not from the build
    trainer(tmp_path / "b", max_epochs=2, callbacks=[rec_resumed]).fit(
        resumed[0], datamodule=resumed[1], ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))

    assert len(rec_full.losses) == len(rec_first.losses) + len(rec_resumed.losses)
    assert rec_full.losses == pytest.approx(rec_first.losses + rec_resumed.losses, abs=1e-6)
    for name in ("value", "count", "total"):
        assert getattr(resumed[0].reward_shift, name).item() == pytest.approx(
            getattr(full[0].reward_shift, name).item(), abs=1e-9)
    assert torch.allclose(weights(resumed[0]), weights(full[0]), atol=1e-6)


def test_reference_is_frozen_and_not_checkpointed(tmp_path, micro_model_dir, toy_files):
    module, dm = make(micro_model_dir, toy_files["pairs"], losses.bco)
    before = weights(module)
    ref_before = torch.cat([p.flatten() for p in module.reference.model.parameters()]).clone()
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer(tmp_path, max_steps=2, callbacks=[ckpt]).fit(module, datamodule=dm)
    assert not torch.allclose(before, weights(module))  # the policy moved
    assert torch.equal(ref_before, torch.cat([p.flatten() for p in module.reference.model.parameters()]))
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(k.startswith(("policy.", "reward_shift.")) for k in state)
    assert "reward_shift.value" in state


def test_sft_skips_the_reference_and_the_rejected_half(micro_model_dir, toy_files):
    module, dm = make(micro_model_dir, toy_files["rft"], losses.sft)
    assert module.reference.kind == "none" and not module.needs_pairs
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[0] == 4  # no rejected rows
    lp = module.forward_logps(batch)
    assert lp.rejected is None and lp.ref_chosen is None


def test_policy_equal_to_reference_gives_zero_rewards_and_dpo_log2(micro_model_dir, toy_files):
    module, dm = make(micro_model_dir, toy_files["pairs"], losses.dpo)
    dm.setup()
    lp = module.forward_logps(next(iter(dm.train_dataloader())))
    out = losses.dpo(lp, beta=0.1)
    assert torch.allclose(out.losses, torch.full_like(out.losses, 0.6931472), atol=1e-5)


def test_a_reference_that_does_not_fit_the_loss_is_refused(micro_model_dir):
    """The kind is decided once (spot.reference.decide); the module refuses a mismatch instead of re-deciding."""
    from spot.reference import ADAPTERS_OFF, PRECOMPUTED

    with pytest.raises(ValueError, match="this loss uses no reference; a live reference was given"):
        SPoTModule(load_model(micro_model_dir), losses.Objective(losses.sft),
                   reference=Reference.live(load_model(micro_model_dir)))
    with pytest.raises(ValueError, match="this loss uses no reference; a precomputed reference was given"):
        SPoTModule(load_model(micro_model_dir), losses.Objective(losses.sft), reference=Reference(PRECOMPUTED))
    with pytest.raises(ValueError, match="adapters_off reference needs a policy with LoRA adapters"):
        SPoTModule(load_model(micro_model_dir), losses.Objective(losses.dpo, beta=0.1),
                   reference=Reference(ADAPTERS_OFF))
