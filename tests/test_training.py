"""The training run's scoring (spot.training.RunScoring), in process: when the base and the trained policy are
scored, on what, and that a ZeRO-3 policy is gathered before it is scored and saved."""

import copy
import json

import lightning as L
import torch

from spot import losses, training
from spot.chat import ChatFormat
from spot.data import PairDataModule
from spot.generation import Sampling
from spot.models import PolicySaver, load_model, load_tokenizer
from spot.module import OptimConfig, SPoTModule
from spot.reference import Reference
from spot.toy.suites import toy_suite


def test_trained_policy_is_gathered_before_it_is_scored_and_saved(tmp_path, micro_model_dir, toy_files,
                                                                  monkeypatch):
    """Under ZeRO-3, `consolidate_policy` hands rank 0 a new, whole model in place of the sharded one. A stand-in
    that does the same (a copy with other weights) shows RunScoring scores and saves *that* model, after the
    gather, while the base was scored before training on the untouched weights."""
    import spot.training as training

    events, scored = [], []

    def gather(trainer, module):
        whole = copy.deepcopy(module.policy)
        with torch.no_grad():
            whole.model.norm.weight.mul_(3.0)  # weights no training step would give
        module.policy = whole
        events.append("gather")

    def spy(engine, *args, **kwargs):  # the hf engine scores the model it holds
        events.append("score")
        scored.append({k: v.clone() for k, v in engine.model.state_dict().items()})
        return real_score(engine, *args, **kwargs)

    real_score = training.score_model
    monkeypatch.setattr(training, "consolidate_policy", gather)
    monkeypatch.setattr(training, "score_model", spy)

    chat = ChatFormat(load_tokenizer(micro_model_dir))
    initial = {k: v.clone() for k, v in load_model(micro_model_dir).state_dict().items()}
    module = SPoTModule(load_model(micro_model_dir), losses.Objective(losses.bco, beta=0.1),
                        reference=Reference.live(load_model(micro_model_dir)), optim=OptimConfig(lr=1e-2))
    dm = PairDataModule(str(toy_files["pairs"]), chat, pairs=True, batch_size=4)
    suites = toy_suite("in_domain", n=3, max_new_tokens=4)
    scoring = training.RunScoring(chat, suites, Sampling(batch_size=8), save=PolicySaver(tmp_path / "policy"),
                                   progress=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[scoring])
    metrics = training.train_and_evaluate(module, dm, trainer, scoring, tmp_path / "run", {"method": "bco"})

    assert events == ["score", "gather", "score"]
    assert all(torch.equal(scored[0][k], initial[k]) for k in initial)  # the base: weights as loaded
    gathered = module.policy.state_dict()
    assert all(torch.equal(scored[1][k], gathered[k]) for k in gathered)  # the trained: the gathered model
    saved = load_model(str(tmp_path / "policy")).state_dict()
    assert all(torch.equal(saved[k], gathered[k]) for k in gathered)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk["trained"]["suites"] == metrics["trained"]["suites"] and "base" in on_disk


def test_a_run_with_no_suites_says_so_and_writes_no_scores(tmp_path, micro_model_dir, toy_files, capsys):
    from spot.training import RunScoring, train_and_evaluate

    chat = ChatFormat(load_tokenizer(micro_model_dir))
    module = SPoTModule(load_model(micro_model_dir), losses.Objective(losses.sft), optim=OptimConfig(lr=1e-3))
    dm = PairDataModule(str(toy_files["rft"]), chat, pairs=False, batch_size=4)
    scoring = RunScoring(chat, [], Sampling(), save=None)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[scoring])
    metrics = train_and_evaluate(module, dm, trainer, scoring, tmp_path, {"method": "sft"})
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert "trained" not in on_disk and "base" not in on_disk and "delta" not in on_disk
    assert on_disk["note"].startswith("no suites were selected") and on_disk["steps"] == 1
    assert metrics["note"] in capsys.readouterr().out


def test_the_base_score_cache_is_keyed_by_the_engine_dtype_and_precision_too(micro_model_dir):
    """A base scored by hf in bf16 was reused for a vllm_cpu/fp32 run: forgetting measured against it is partly
    the engine's. Everything that changes a score must change the key."""
    from spot.answers import exact_match
    from spot.chat import ChatFormat
    from spot.evaluate.suites import Suite
    from spot.generation import Sampling
    from spot.models import load_tokenizer

    chat = ChatFormat(load_tokenizer(micro_model_dir), None, "{prompt}")
    suites = [Suite("s", "in_domain", ["1+1="], ["2"], lambda c, a: exact_match(c, a))]
    hf = {"generation": "hf", "weights": "float32", "trainer.precision": "32-true"}

    def key(**changes):
        return training.base_cache_key(micro_model_dir, suites, Sampling(), chat, 0, scored_by={**hf, **changes})

    assert key() == key() is not None
    assert len({key(), key(generation="vllm_cpu"), key(weights="bfloat16"), key(**{"trainer.precision":
                                                                                    "bf16-mixed"})}) == 4
