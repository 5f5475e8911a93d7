"""Training a real-path Hugging Face model as on GPUs, on the CPU: precision, LoRA, checkpoints, errors first.

The micro model is a Qwen3ForCausalLM built from a config with a BPE tokenizer (tests/micro_hf.py), saved in
bf16 like a hub checkpoint, trained by train.py on GSM8K pairs from assets/gsm8k. Runs that must stop with one line
and exit status 2 run train.py in a process of their own; the others run in this one (conftest.train_here).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import train_here
from micro_hf import build_micro_hf_model, gsm8k_corpus, gsm8k_pairs, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "assets" / "gsm8k" / "test.jsonl"   # the repository's slice (assets/gsm8k/README.md)


def train(cwd: Path, *overrides: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides], cwd=cwd, capture_output=True,
                          text=True, timeout=900, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error line of a run that stopped on bad input: exit 2, no traceback, one `error:` line."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr[-2000:]
    return errors[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """A bf16 micro model (as hub checkpoints are stored) and 12 GSM8K pairs."""
    base = tmp_path_factory.mktemp("real-training")
    model_dir = build_micro_hf_model(base / "fp32", gsm8k_corpus())
    from transformers import AutoModelForCausalLM, AutoTokenizer

    bf16 = base / "model"
    AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).save_pretrained(bf16)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(bf16)
    pairs = write_jsonl(base / "pairs.jsonl", gsm8k_pairs(12))
    common = ["model=hf", f"model.path={bf16}", "data=rectified_4k", f"data.path={pairs}", "data.max_length=384",
              "data.max_prompt_length=192", "logger=csv"]
    return {"dir": base, "model": bf16, "pairs": pairs, "common": common}


def policy_state(ckpt: Path) -> dict[str, torch.Tensor]:
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    return {k.removeprefix("policy."): v for k, v in state.items() if k.startswith("policy.")}


# --- precision ------------------------------------------------------------------------------------------------

def test_bf16_model_with_mixed_precision_moves_nearly_every_weight_at_lr_1e6(world):
    """model.dtype=bfloat16 + trainer.precision=bf16-mixed: fp32 master weights, so 10 AdamW steps at the paper's
    lr move >99% of them (bf16 weights updated in place left 98% bit-identical); the policy is written as bf16."""
    run = world["dir"] / "bf16-mixed"
    train_here(world["dir"], *world["common"], "model.dtype=bfloat16", "trainer.precision=bf16-mixed",
               "pref_lr=1e-6", "data.batch_size=1", "trainer.max_steps=10", f"hydra.run.dir={run}")
    from safetensors.torch import load_file

    initial = load_file(world["model"] / "model.safetensors")
    trained = policy_state(run / "checkpoints" / "last.ckpt")
    assert all(v.dtype == torch.float32 for v in trained.values())  # the master weights are fp32
    changed = total = 0
    for name, w0 in initial.items():
        changed += (trained[name] != w0.float()).sum().item()
        total += w0.numel()
    assert changed / total > 0.99, f"{changed} of {total} weights changed"
    saved = load_file(run / "policy" / "model.safetensors")
    assert {v.dtype for v in saved.values()} == {torch.bfloat16}
    assert json.loads((run / "policy" / "config.json").read_text())["dtype"] == "bfloat16"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["weights_dtype"] == "float32" and metrics["run"]["precision"] == "bf16-mixed"


def test_what_the_refusal_prevents_bf16_weights_under_adamw_barely_move(world):
    """The premise of refusing bf16 weights with a torch AdamW, measured: the same 10 steps at lr 1e-6 on the
    same model held in bf16 leave most weights bit-identical (the update is under half a bf16 step)."""
    from spot import losses
    from spot.chat import ChatFormat
    from spot.data import PairDataModule
    from spot.models import load_model, load_tokenizer
    from spot.module import SPoTModule

    path = str(world["model"])
    policy = load_model(path, "bfloat16")
    module = SPoTModule(policy, losses.Objective(losses.sft))
    dm = PairDataModule(str(world["pairs"]), ChatFormat(load_tokenizer(path)), pairs=False, batch_size=1,
                        max_length=384, max_prompt_length=192)
    dm.setup("fit")
    before = [p.detach().clone() for p in policy.parameters()]
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, betas=(0.9, 0.95), weight_decay=0.01)
    for _, batch in zip(range(10), dm.train_dataloader()):
        opt.zero_grad()
        module.training_step(batch, 0).backward()
        opt.step()
    same = sum((p == b).sum().item() for p, b in zip(policy.parameters(), before))
    total = sum(b.numel() for b in before)
    assert same / total > 0.9, f"{same} of {total} weights unchanged"


@pytest.mark.parametrize("overrides, message", [
    (["model.dtype=bfloat16"], "model.dtype=bfloat16 with trainer.precision=32-true: AdamW would update bfloat16 "
                               "weights in place"),
    (["model.dtype=bfloat16", "trainer.precision=bf16-true"], "with trainer.precision=bf16-true: AdamW would"),
    (["model.dtype=bfloat16", "trainer.precision=16-mixed"], "the two name different half precisions"),
    (["trainer=deepspeed_zero2"], "trainer=deepspeed_zero2: DeepSpeed needs a CUDA GPU and torch sees none"),
    (["trainer=gpu"], "trainer=gpu: trainer.accelerator=gpu needs a CUDA GPU"),
    (["model.dtype=float32", "model.attn_implementation=flash_attention_2"],
     "model.attn_implementation=flash_attention_2 needs a CUDA GPU"),
    (["model.dtype=float32", "model.lora.r=-1"], "model.lora.r: must be 0 (no LoRA) or a positive rank"),
])
def test_mis_set_runs_stop_with_one_line_before_loading(world, overrides, message):
    t0 = time.time()
    proc = train(world["dir"], *world["common"], *overrides, "hydra.run.dir=refused", check=False)
    assert message in one_line_error(proc)
    assert "Loading" not in proc.stdout + proc.stderr
    assert time.time() - t0 < 120  # a generous bound: the point is that nothing was trained (no checkpoints)
    assert not (world["dir"] / "refused" / "checkpoints").exists()


def test_model_too_large_for_the_trainer_is_refused_from_its_config(world, tmp_path):
    """A 32B-parameter config (no weights on disk) on this machine's RAM: counted on the meta device, refused."""
    from transformers import AutoTokenizer, Qwen3Config

    big = tmp_path / "big"
    Qwen3Config(vocab_size=151_936, hidden_size=5120, intermediate_size=25_600, num_hidden_layers=64,
                num_attention_heads=64, num_key_value_heads=8, head_dim=128).save_pretrained(big)
    AutoTokenizer.from_pretrained(world["model"]).save_pretrained(big)
    proc = train(tmp_path, *world["common"], f"model.path={big}", "model.dtype=float32", "hydra.run.dir=r",
                 check=False)
    line = one_line_error(proc)
    assert f"model.path={big}: 32." in line and "B parameters need" in line and "use LoRA" in line


def test_an_unreachable_hub_id_is_one_line(world, tmp_path):
    """With the hub allowed (HF_HUB_OFFLINE unset) an id that cannot be had answers at once: this machine has no
    route to the hub ('cannot be reached'), a machine with one gets 'no such model'."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    proc = train(tmp_path, *world["common"], "model.path=spot-tests/no-such-model-7f3a", "model.dtype=float32",
                 "hydra.run.dir=r", check=False, env=env)
    line = one_line_error(proc)
    assert line.startswith("error: model.path=spot-tests/no-such-model-7f3a: ")
    assert "cannot be reached" in line or "no such model" in line
    assert "Retrying" not in proc.stderr


def test_an_unreachable_hub_dataset_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    proc = subprocess.run([sys.executable, str(ROOT / "rectify.py"), "problems=dapo", "oracle=toy",
                           "problems.source.path=spot-tests/no-such-dataset-7f3a", "hydra.run.dir=r"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    line = one_line_error(proc)
    assert line.startswith("error: problems.source.path=spot-tests/no-such-dataset-7f3a: ")
    assert "Retrying" not in proc.stderr


# --- checkpoints ----------------------------------------------------------------------------------------------

def test_hf_runs_keep_only_last_checkpoint_unless_asked(world):
    run = world["dir"] / "ckpts"
    train_here(world["dir"], *world["common"], "model.dtype=float32", "trainer.max_epochs=2", "data.batch_size=4",
               "save_policy=false", f"hydra.run.dir={run}")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert not (run / "policy").exists()


# --- LoRA -----------------------------------------------------------------------------------------------------

LORA = ["model.dtype=float32", "model.lora.r=8", "model.lora.alpha=16", "data.batch_size=4", "pref_lr=1e-3",
        "trainer.log_every_n_steps=1"]


@pytest.fixture(scope="module")
def lora_runs(world) -> dict[str, Path]:
    """BCO + LoRA for 2 epochs, scored on 8 GSM8K problems, keeping each epoch's checkpoint; and a run resumed
    from its first epoch's checkpoint."""
    runs = {k: world["dir"] / f"lora-{k}" for k in ("full", "resumed")}
    suite = ["eval=[gsm8k]", f"eval.suites.gsm8k.path={GSM8K}", "eval.suites.gsm8k.limit=8",
             "eval.max_new_tokens=8"]
    train_here(world["dir"], *world["common"], *LORA, *suite, "trainer.max_epochs=2", "model.save_top_k=-1",
               f"hydra.run.dir={runs['full']}")
    (first,) = (runs["full"] / "checkpoints").glob("epoch=0-*.ckpt")
    train_here(world["dir"], *world["common"], *LORA, "trainer.max_epochs=2", "save_policy=false",
               f"ckpt_path='{first}'", f"hydra.run.dir={runs['resumed']}")  # Hydra: a value with '=' is quoted
    return runs


def test_lora_trains_saves_adapters_and_a_merged_policy_and_scores_it(world, lora_runs):
    from safetensors.torch import load_file

    run = lora_runs["full"]
    adapter = load_file(run / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in adapter.items())  # B starts at 0: it trained
    merged, base = load_file(run / "policy" / "model.safetensors"), load_file(world["model"] / "model.safetensors")
    assert set(merged) == set(base)  # a plain model again, with the adapters folded in
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"].float(),
                           base["model.layers.0.self_attn.q_proj.weight"].float())
    assert torch.equal(merged["model.embed_tokens.weight"].float(), base["model.embed_tokens.weight"].float())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["run"]["lora_r"] == 8 and metrics["n"] == {"gsm8k": 8}
    assert len(metrics["trained"]["correct"]["gsm8k"]) == 8
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["train/rewards/margins"] != 0  # the reference (adapters off) and the policy have parted


def test_lora_checkpoints_hold_the_adapters_and_reward_shift_only(lora_runs):
    state = torch.load(lora_runs["full"] / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=False)["state_dict"]
    assert state and all("lora_" in k or k.startswith("reward_shift.") for k in state)
    assert {"reward_shift.total", "reward_shift.count", "reward_shift.value"} <= set(state)


def test_lora_resume_continues_as_an_uninterrupted_run(lora_runs):
    full = torch.load(lora_runs["full"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    resumed = torch.load(lora_runs["resumed"] / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert full["global_step"] == resumed["global_step"] == 6
    for k, v in full["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][k], v, rtol=1e-5, atol=1e-6)


def test_lora_reference_is_the_untouched_base(world):
    """After training moves the adapters, the policy with adapters disabled scores exactly as the base model."""
    from spot import losses
    from spot.chat import ChatFormat
    from spot.data import PairDataModule
    from spot.logps import sequence_logps
    from spot.lora import LoraSpec
    from spot.models import load_model, load_tokenizer
    from spot.module import SPoTModule
    from spot.reference import ADAPTERS_OFF, Reference, decide

    path = str(world["model"])
    policy = LoraSpec(r=4).apply(load_model(path, "float32"))
    bco = losses.Objective(losses.bco, beta=0.1)
    module = SPoTModule(policy, bco, reference=Reference(decide(bco, precompute=True, lora=True)))
    assert module.reference.kind == ADAPTERS_OFF and module.reference.model is None
    dm = PairDataModule(str(world["pairs"]), ChatFormat(load_tokenizer(path)), pairs=True, batch_size=4,
                        max_length=256, max_prompt_length=128)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        module.training_step(batch, 0).backward()
        opt.step()
    lp = module.forward_logps(batch)
    base = load_model(path, "float32").eval()
    with torch.no_grad():
        want, _ = sequence_logps(base, **{k: v for k, v in batch.items() if k != "index"})
    b = len(lp.chosen)
    torch.testing.assert_close(torch.cat([lp.ref_chosen, lp.ref_rejected]), want, rtol=0, atol=1e-5)
    assert (lp.chosen.detach() - want[:b]).abs().max() > 1e-3  # while the adapted policy has moved


def test_evaluate_py_scores_a_run_that_kept_only_its_adapters(world, lora_runs, tmp_path):
    """model.lora.merge=false leaves <run>/adapter and no policy/: evaluate.py merges the adapters into the run's
    base itself and gets the completions train-time scoring got from the merged model."""
    import shutil

    run = tmp_path / "adapters-only"
    shutil.copytree(lora_runs["full"], run, ignore=shutil.ignore_patterns("policy", "checkpoints"))
    proc = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), f"model={run}", "eval=[gsm8k]",
                           f"eval.suites.gsm8k.path={GSM8K}", "eval.suites.gsm8k.limit=8", "eval.max_new_tokens=8",
                           "kl=null", "wandb.mode=disabled", "eval.progress=false", "hydra.run.dir=eval"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    read = lambda p: [json.loads(line)["completion"] for line in p.read_text().splitlines()]
    assert read(tmp_path / "eval" / "samples.jsonl") == read(lora_runs["full"] / "samples.jsonl")
