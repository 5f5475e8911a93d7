"""evaluate.py as a user runs it: GSM8K from the shared data, a trained run against its base (deltas, KL),
checkpoints, bad input. Runs reuse the session's toy sweep (test_report.py) as their trained policies."""

import copy
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_report import ROOT, toy_sweep  # noqa: F401  (the session's sweep fixture)

from spot.chat import ChatFormat
from spot.evaluate.checkpoints import CheckpointError, load_for_eval, resolve_source
from spot.evaluate.kl import KLSettings, kl_to_reference

GSM8K_TEST = ROOT / "assets" / "gsm8k" / "test.jsonl"
QUIET = ["wandb.mode=disabled", "eval.progress=false"]


def evaluate(cwd: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"evaluate.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_gsm8k_from_a_local_file_end_to_end(tmp_path, micro_model_dir):
    out = tmp_path / "out"
    proc = evaluate(ROOT, "model=hf", f"model.path={micro_model_dir}", "model.dtype=float32", "eval=gsm8k",
                    f"eval.suites.gsm8k.path={GSM8K_TEST}",
                    "eval.limit=3", "eval.n_samples=2", "eval.max_new_tokens=6", "eval.sampling.temperature=0.7",
                    "eval.sampling.top_p=0.8", "eval.sampling.top_k=20", "wandb.mode=disabled",
                    f"hydra.run.dir={out}")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == {"gsm8k": 3} and metrics["n_samples"] == {"gsm8k": 2}
    assert metrics["trained"]["details"]["gsm8k"]["metric"] == "avg@2"
    assert metrics["sampling"] == {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "batch_size": 64}
    records = read_jsonl(out / "samples.jsonl")
    assert [(r["question"], r["sample"]) for r in records] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert [r["answer"] for r in records[::2]] == ["18", "3", "70000"]
    assert records[0]["prompt"].startswith("Janet")  # the raw problem; the template is the model's
    assert metrics["trained"]["details"]["gsm8k"]["n_questions"] == 3
    assert "eval gsm8k avg@2" in proc.stderr  # the progress bar
    assert "base" not in metrics  # a plain model has no base to compare with


def test_trained_run_against_its_base(toy_sweep, tmp_path, micro_model_dir):  # noqa: F811
    evaluate(tmp_path, f"model={toy_sweep / '6_bco'}", "eval=[toy_in_domain,toy_prior]",
             "eval.suites.toy_in_domain.n=2", "eval.suites.toy_prior.n=1", "eval.max_new_tokens=4",
             "kl.n_prompts=2", "kl.max_new_tokens=4", "eval.progress=false",
             "eval.kl_prompts={_target_:spot.arith.prior.kl_prompts}", "hydra.run.dir=out")
    out = tmp_path / "out"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"]["method"] == "bco" and metrics["run"]["kind"] == "run"
    assert metrics["base"]["model"] == micro_model_dir
    assert set(metrics["delta_suites"]) == {"toy_in_domain", "toy_prior_fact", "toy_prior_next",
                                            "toy_prior_first"}
    assert metrics["delta"]["forgetting"] == pytest.approx(
        metrics["base"]["groups"]["prior"] - metrics["trained"]["groups"]["prior"])
    assert metrics["kl"]["n_samples"] == 2 and {"token", "sequence"} <= set(metrics["kl"])
    assert metrics["kl"]["prompts"] == "eval.kl_prompts"  # the 60 chat prompts' first 2, not the suites'
    assert len(read_jsonl(out / "samples.jsonl")) == len(read_jsonl(out / "base_samples.jsonl")) == 5
    assert list((out / "wandb").glob("offline-run-*")), "W&B offline run missing"


def test_checkpoint_loads_the_same_weights_as_the_saved_policy(toy_sweep, micro_model_dir):  # noqa: F811
    run = toy_sweep / "6_bco"
    from_ckpt, _ = load_for_eval(resolve_source(str(run / "checkpoints" / "last.ckpt")))
    from_policy, _ = load_for_eval(resolve_source(str(run)))
    base, _ = load_for_eval(resolve_source(micro_model_dir))
    ckpt_sd, policy_sd, base_sd = from_ckpt.state_dict(), from_policy.state_dict(), base.state_dict()
    assert all(torch.equal(ckpt_sd[k], policy_sd[k]) for k in policy_sd)
    assert any(not torch.equal(ckpt_sd[k], base_sd[k]) for k in base_sd), "checkpoint weights were not applied"
    assert resolve_source(str(run / "checkpoints" / "last.ckpt")).base == micro_model_dir


def test_broken_checkpoints_say_what_is_wrong(toy_sweep, tmp_path):  # noqa: F811
    garbage = tmp_path / "run" / "checkpoints" / "last.ckpt"
    garbage.parent.mkdir(parents=True)
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot tell which base model .* pass base="):
        resolve_source(str(garbage))
    with pytest.raises(CheckpointError, match=r"last.ckpt cannot be read"):
        load_for_eval(resolve_source(str(garbage), base=str(toy_sweep / "6_bco" / "policy")))
    from spot.toy.model import build_model, build_tokenizer

    other = tmp_path / "wider"
    tok = build_tokenizer()
    wider = build_model(tok, hidden_size=48, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64)
    wider.save_pretrained(other)
    tok.save_pretrained(other)
    ckpt = toy_sweep / "6_bco" / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match=r"does not fit base model .*wider \(shape mismatch: \d+ e.g."):
        load_for_eval(resolve_source(str(ckpt), base=str(other)))
    empty_run = tmp_path / "unfinished"
    (empty_run / ".hydra").mkdir(parents=True)
    shutil.copy(toy_sweep / "6_bco" / ".hydra" / "config.yaml", empty_run / ".hydra" / "config.yaml")
    with pytest.raises(CheckpointError, match="neither policy/ nor checkpoints"):
        resolve_source(str(empty_run))


def test_missing_benchmark_file_names_suite_and_path(tmp_path):
    proc = evaluate(tmp_path, "eval=[math500,ifeval]", f"benchmarks_dir={tmp_path}/nowhere", *QUIET, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (f"error: 2 benchmark files are missing: eval.suites.math500.path={tmp_path}/nowhere/math500.jsonl, "
            f"eval.suites.ifeval.path={tmp_path}/nowhere/ifeval.jsonl; the hub cannot be reached") in proc.stderr


def test_kl_is_zero_against_itself_and_positive_against_a_sharper_reference(micro_model_dir):
    policy, tok = load_for_eval(resolve_source(micro_model_dir))
    prompts = ["Ann has 3 pens. How many pens?", "Reverse the word cat."]
    same = kl_to_reference(policy, policy, ChatFormat(tok), prompts, KLSettings(max_new_tokens=6))
    assert same["token"] == 0.0 and same["sequence"] == 0.0 and same["n_samples"] == 2
    sharper = copy.deepcopy(policy)
    with torch.no_grad():
        sharper.lm_head.weight.mul_(5)  # the same model at a much lower temperature: far from the policy
    kl = kl_to_reference(policy, sharper, ChatFormat(tok), prompts * 8, KLSettings(n_prompts=16, max_new_tokens=6))
    assert kl["sequence"] > 0.5 and kl["n_samples"] == 16
    assert kl["token"] == pytest.approx(kl["sequence"] / kl["mean_tokens"])


def test_model_shorthand_keeps_config_names_and_gives_other_models_their_config(monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    spec = importlib.util.spec_from_file_location("evaluate_entry", ROOT / "evaluate.py")
    entry = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(entry)
    assert entry.model_shorthand(["model=toy", "eval.limit=3"]) == ["model=toy", "eval.limit=3"]
    # a hub id or a directory is a real model: model=hf's prompt format (boxed answers, non-thinking), as train.py
    assert entry.model_shorthand(["model=Qwen/Qwen3-8B"]) == ["model=hf", "model.path=Qwen/Qwen3-8B",
                                                               "model.dtype=auto"]
    assert entry.model_shorthand(["model=run/last.ckpt", "model.dtype=bfloat16"]) == [
        "model=hf", "model.path=run/last.ckpt", "model.dtype=bfloat16"]
    # ...unless a conf/model/ file names that directory: the toy base keeps the toy world's format and suites
    assert entry.model_shorthand([f"model={ROOT / 'assets/toy-base'}"])[0] == "model=toy"
    monkeypatch.chdir(tmp_path)  # and from any other directory (the engine tests run there)
    assert entry.model_shorthand([f"model={ROOT / 'assets/toy-base'}"])[0] == "model=toy"
