"""The GPU check (issue #5): one GPU, under 10 minutes, no network. Writes gpu_check.json to $OUT when set.

    python benchmarks/gpu_check.py                     # Qwen3-0.6B-shaped model (random weights) on one GPU
    python benchmarks/gpu_check.py --cpu-smoke         # the same code path, tiny model, CPU, ~1 minute
    pip install --no-index --no-deps benchmarks/wheels/*.whl   # optional, before: TRL 1.16 + accelerate wheels

What it does, in order, each part timed and caught so one failure does not hide the others:
  1. memory arithmetic for Qwen3-8B on 8 x 80 GB under ZeRO-2 / ZeRO-3 (with and without offload), printed;
  2. BCO steps of this project's training path (PairDataModule, SPoTModule, ReferenceLogps, Lightning, bf16-mixed)
     on a Qwen3-architecture model of ~0.6B parameters built from its config (Qwen3-0.6B's shape: 151,936-entry
     vocabulary), reference log-probs precomputed first; tokens/s and model FLOPs utilisation (MFU);
  3. the same steps under DeepSpeed ZeRO-3 on this one GPU with a *live* reference, which exercises the sharded
     reference, the ZeRO-3 branch of the LM head and the gathering of the policy after fit (nothing in the CPU
     test suite can);
  4. TRL's DPOTrainer (loss_type bco_pair, bf16, live reference) on the same model and pairs, if trl imports.
Pairs are synthetic (no data files needed): a prompt, then chosen and rejected answers that share a first part
and then differ, like rectified pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import build_model_dir, rss_now_mb  # noqa: E402  (this folder, also when run standalone)

QWEN3_06B = dict(hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8, intermediate_size=3072,
                 vocab=151_936)
TINY = dict(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, vocab=151_936)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "L40S": 362e12}  # dense, per GPU


def memory_arithmetic(params: float = 8.19e9, gpus: int = 8, gpu_gb: float = 80.0) -> list[dict]:
    """Bytes per GPU for mixed-precision AdamW (ZeRO paper accounting: 2 weights + 2 grads + 12 optimizer).

    Activations are for one micro batch of 2 pairs x 8192 tokens (4 sequences, 32k tokens) with gradient
    checkpointing: one hidden state per layer kept (36 layers x 4096 x bf16) plus one layer recomputed.
    """
    gb = 1e9
    hidden, layers, vocab, tokens = 4096, 36, 151_936, 4 * 8192
    ckpt_acts = (layers * tokens * hidden * 2 + tokens * hidden * 2 * 34) / gb
    full_logits = 2 * tokens * vocab * 4 / gb  # fp32 logits and their gradient: what the fused head avoids
    live_ref = 2 * params / gb
    rows = []
    for name, w, g, o in (("ZeRO-2", 2, 2 / gpus, 12 / gpus), ("ZeRO-2 + optimizer offload", 2, 2 / gpus, 0),
                          ("ZeRO-3", 2 / gpus, 2 / gpus, 12 / gpus), ("ZeRO-3 + param/optimizer offload", 0,
                                                                      2 / gpus, 0)):
        states = params * (w + g + o) / gb
        ref = live_ref if name.startswith("ZeRO-2") else live_ref / gpus
        rows.append({"setup": name, "model_states_gb": round(states, 1), "activations_ckpt_gb": round(ckpt_acts, 1),
                     "full_logits_gb_avoided": round(full_logits, 1), "live_reference_gb_avoided": round(ref, 1),
                     "total_gb": round(states + ckpt_acts, 1), "fits_80gb": states + ckpt_acts < gpu_gb})
    return rows


def synthetic_pairs(n: int, length: int, seed: int = 0) -> list[dict]:
    """Prompt ~length/4 characters; chosen and rejected share their first half, then differ."""
    rng = random.Random(seed)
    words = ["step", "add", "the", "total", "is", "so", "we", "get", "then", "each", "of", "3", "12", "45", "="]
    text = lambda k: " ".join(rng.choice(words) for _ in range(k // 4))
    pairs = []
    for _ in range(n):
        shared = text(length // 2)
        pairs.append({"prompt": text(length // 4), "chosen": shared + " " + text(length // 2),
                      "rejected": shared + " " + text(length // 2)})
    return pairs


def pair_tokens(model_dir: Path, pairs: list[dict]) -> float:
    """Mean tokens per pair, both sequences with their prompt, as this project encodes them."""
    from spot.chat import ChatFormat
    from spot.data import encode
    from spot.models import load_tokenizer

    chat = ChatFormat(load_tokenizer(str(model_dir)))
    return sum(len(encode(chat, p["prompt"], p[k], 8192, 4096)[0]) for p in pairs for k in ("chosen", "rejected")
               ) / len(pairs)


def model_flops_per_token(cfg: dict, seq: int) -> float:
    """Training FLOPs per token: 6 x (non-embedding + LM head) parameters + attention (PaLM appendix B)."""
    h, layers, inter, vocab = cfg["hidden_size"], cfg["num_layers"], cfg["intermediate_size"], cfg["vocab"]
    head_dim = h // cfg["num_heads"]
    attn_params = h * head_dim * (2 * cfg["num_heads"] + 2 * cfg["num_kv_heads"])
    params = layers * (attn_params + 3 * h * inter) + h * vocab
    return 6 * params + 12 * layers * h * seq


def run_spot(model_dir: Path, pairs_path: Path, args, device: str, deepspeed: bool = False) -> dict:
    """BCO through this project's path; with `deepspeed`, ZeRO-3 on one GPU and a live (sharded) reference,
    scored and saved through train.py's RunScoring (which gathers the ZeRO-3 policy first)."""
    import lightning as L

    from spot import losses
    from spot.answers import Verdict
    from spot.chat import ChatFormat
    from spot.data import PairDataModule
    from spot.evaluate.suites import Suite
    from spot.generation import Sampling
    from spot.models import load_model, load_tokenizer
    from spot.module import OptimConfig, SPoTModule
    from spot.refcache import ReferenceLogps
    from spot.training import RunScoring

    tok, dtype = load_tokenizer(str(model_dir)), "float32"
    module = SPoTModule(load_model(str(model_dir), dtype), losses.Objective(losses.bco, beta=0.1),
                        reference=load_model(str(model_dir), dtype) if deepspeed else None,
                        reward_shift=losses.RewardShift(), optim=OptimConfig(lr=1e-6),
                        precomputed_reference=not deepspeed)
    if args.gradient_checkpointing:
        module.policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    dm = PairDataModule(str(pairs_path), ChatFormat(tok), pairs=True, batch_size=args.batch, max_length=8192,
                        max_prompt_length=4096, layout=args.layout)
    stamps: list[tuple[float, int]] = []

    class Timer(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if device == "cuda":
                import torch

                torch.cuda.synchronize()
            stamps.append((time.perf_counter(), int(batch["input_ids"].numel())))

    strategy = "auto"
    if deepspeed:
        from lightning.pytorch.strategies import DeepSpeedStrategy

        strategy = DeepSpeedStrategy(stage=3, logging_batch_size_per_gpu=args.batch)
    refs = ReferenceLogps(None)
    callbacks = [Timer(), refs]
    scoring = None
    if deepspeed:  # a 4-problem suite: enough to show the gathered policy generates, and is saved whole
        problems = [json.loads(line)["prompt"] for line in pairs_path.read_text().splitlines()[:4]]
        suite = Suite("gpu_check", "in_domain", problems, ["-"] * len(problems), lambda c, a: Verdict(False, None),
                      max_new_tokens=8)
        save_dir = Path(tempfile.mkdtemp()) / "policy"
        scoring = RunScoring(ChatFormat(tok), [suite], Sampling(max_new_tokens=8, batch_size=4), save_dir=save_dir,
                             progress=False)
        callbacks.append(scoring)
    trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, strategy=strategy,
                        precision="bf16-mixed" if device == "cuda" else "32-true", max_steps=args.steps,
                        gradient_clip_val=1.0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                        callbacks=callbacks)
    trainer.fit(module, dm)
    out = {"stamps": stamps, "ref_pass_s": refs.report.get("train", {}).get("seconds")}
    if scoring is not None:  # RunScoring gathered the ZeRO-3 policy, scored it and saved it (train.py's path)
        out["consolidated_params"] = sum(p.numel() for p in module.policy.parameters())
        out["scored_completions"] = len(scoring.records or [])
        out["saved_policy"] = sorted(p.name for p in scoring.save_dir.glob("*.safetensors"))
    return out


def run_trl(model_dir: Path, pairs_path: Path, args, device: str) -> dict:
    """TRL's DPOTrainer, bco_pair, bf16 on GPU, live reference, no gradient checkpointing unless asked."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from spot.chat import ChatFormat
    from spot.models import load_tokenizer

    tok = load_tokenizer(str(model_dir))
    rows = [json.loads(line) for line in pairs_path.read_text().splitlines()]
    data = Dataset.from_list([{**r, "prompt": ChatFormat(tok).prompt_text(r["prompt"])} for r in rows])
    stamps: list[tuple[float, int]] = []

    class Timer(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if device == "cuda":
                import torch

                torch.cuda.synchronize()
            stamps.append((time.perf_counter(), 0))

    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(output_dir=out, per_device_train_batch_size=args.batch, max_steps=args.steps,
                           learning_rate=1e-6, loss_type=["bco_pair"], beta=0.1, max_length=None,
                           bf16=device == "cuda", gradient_checkpointing=args.gradient_checkpointing,
                           use_cpu=device != "cuda", save_strategy="no", report_to="none", logging_steps=1,
                           disable_tqdm=True, train_sampling_strategy="sequential")
        trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(model_dir)),
                             ref_model=AutoModelForCausalLM.from_pretrained(str(model_dir)), args=config,
                             train_dataset=data, processing_class=tok, callbacks=[Timer()])
        trainer.train()
    return {"stamps": stamps}


def throughput(stamps: list[tuple[float, int]], batch: int, tokens_per_pair: float, flops_per_token: float,
               peak: float | None) -> dict:
    """Steady-state rates from the step timestamps (the first step, with its warm-up, left out)."""
    if len(stamps) < 3:
        return {"error": f"only {len(stamps)} steps"}
    seconds = stamps[-1][0] - stamps[0][0]
    steps = len(stamps) - 1
    pairs_s = steps * batch / seconds
    tokens_s = pairs_s * tokens_per_pair
    out = {"steps_timed": steps, "pairs_per_s": round(pairs_s, 3), "tokens_per_s": round(tokens_s)}
    positions = [n for _, n in stamps[1:] if n]
    if positions:  # positions actually computed (the shared layout computes fewer than the logical tokens)
        out["positions_per_s"] = round(sum(positions) / seconds)
    if peak:
        out["mfu"] = round(tokens_s * flops_per_token / peak, 4)
    return out


def device_info() -> tuple[str, float | None]:
    import torch

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return "cuda", next((v for k, v in PEAK_BF16.items() if k in name), None)


def section(results: dict, name: str, fn) -> None:
    """Runs one part; its result or its error (last traceback lines) goes into `results[name]`."""
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as e:  # noqa: BLE001 - a failed part is reported, the others still run
        results[name] = {"error": f"{type(e).__name__}: {e}"[:500],
                         "traceback": traceback.format_exc().splitlines()[-8:]}
    results[name + "_seconds"] = round(time.perf_counter() - t0, 1)
    print(f"== {name} ({results[name + '_seconds']} s)\n{json.dumps(results[name], indent=1)[:3000]}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model on CPU: checks the code path only")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4, help="pairs per step")
    ap.add_argument("--length", type=int, default=2048, help="characters (= tokens) per answer, roughly")
    ap.add_argument("--layout", default="shared", choices=["padded", "packed", "shared"])
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: spot, zero3, trl")
    args = ap.parse_args()
    if args.cpu_smoke:
        args.steps, args.batch, args.length = min(args.steps, 3), 2, min(args.length, 64)
    device, peak = device_info()
    if device == "cpu" and not args.cpu_smoke:
        sys.exit("error: no GPU visible; run with --cpu-smoke to check the code path on CPU")
    import torch

    cfg = TINY if args.cpu_smoke else QWEN3_06B
    results: dict = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu", "args": vars(args),
                     "peak_bf16_flops": peak, "model": cfg}
    section(results, "memory_qwen3_8b_8x80gb", memory_arithmetic)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, pairs_path = Path(tmp) / "model", Path(tmp) / "pairs.jsonl"
        import bench_train

        bench_train.MODELS["gpu-check"] = cfg
        build_model_dir("gpu-check", model_dir)
        pairs = synthetic_pairs(args.steps * args.batch, args.length)
        pairs_path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
        tokens_per_pair = pair_tokens(model_dir, pairs)
        flops = model_flops_per_token(cfg, int(tokens_per_pair / 2))
        results["tokens_per_pair"], results["flops_per_token"] = tokens_per_pair, flops
        rate = lambda run: {**throughput(run["stamps"], args.batch, tokens_per_pair, flops, peak),
                            **{k: v for k, v in run.items() if k != "stamps"}}
        skip = set(args.skip.split(","))
        if "spot" not in skip:
            section(results, "spot_bco_precomputed", lambda: rate(run_spot(model_dir, pairs_path, args, device)))
        if "zero3" not in skip and device == "cuda":
            section(results, "spot_bco_zero3_live_reference",
                    lambda: rate(run_spot(model_dir, pairs_path, args, device, deepspeed=True)))
        if "trl" not in skip:
            section(results, "trl_bco_pair", lambda: rate(run_trl(model_dir, pairs_path, args, device)))
    if device == "cuda":
        results["max_memory_allocated_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    results["rss_mb"] = round(rss_now_mb())
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({k: v for k, v in results.items() if not isinstance(v, dict)}, indent=1))


if __name__ == "__main__":
    main()
