"""The GPU check (issue #12): train.py itself, on one GPU, in a few minutes, with no network and no data files.

    python benchmarks/gpu_check.py               # one GPU: Qwen3-1.7B-shaped model (random weights), bf16, ZeRO-2
    python benchmarks/gpu_check.py --cpu-smoke   # the same path on CPU with a tiny model, ~1-2 minutes

It builds a model directory (random weights in bf16, a character tokenizer padded to Qwen's 151,936 entries;
benchmarks/bench_train.build_model_dir) and synthetic pairs, then runs `python train.py` twice, each in its own
process and run directory, exactly as a user would:

    python train.py model=hf model.path=<tmp>/model model.dtype=bfloat16 data=rectified_4k \\
        data.path=<tmp>/pairs.jsonl trainer=deepspeed_zero2 trainer.devices=1 speed.gradient_checkpointing=true \\
        logger=csv trainer.max_steps=30 ... hydra.run.dir=<tmp>/bco_precomputed
    ... the same with loss=dpo speed.precompute_reference=false                        (a live reference model)

(--cpu-smoke: trainer=cpu trainer.precision=bf16-mixed instead of the DeepSpeed trainer.) model=hf selects no
eval suites, so nothing is generated. From each run's train_log.jsonl and metrics.json (spot.throughput's
train/tokens_per_s and train/peak_mem_gb, logged by train.py) it prints tokens/s, model FLOPs utilisation (MFU:
6N FLOPs per trained token, plus 2N per token the live reference scores; N = non-embedding + LM-head
parameters; attention and the checkpointing recompute not counted), peak GPU memory and the loss curve, states
the targets (MFU >= 40% for BCO, peak memory < 60% of the card) and whether each is met, and writes
gpu_check.json to $OUT when set. Each run is caught on its own, so one failure does not hide the other.
Exit status: 1 if a run failed or trained no step, 2 if every run worked but a target was missed, else 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import build_model_dir  # noqa: E402  (this folder, also when run standalone)

ROOT = Path(__file__).resolve().parents[1]
QWEN3_17B = dict(hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=8, intermediate_size=6144,
                 vocab=151_936)  # head_dim = 2048 / 16 = 128, tied embeddings (spot.toy.model.build_model)
TINY = dict(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128, vocab=151_936)
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "H800": 989e12, "A100": 312e12, "L40S": 362e12}  # dense, per GPU
TARGETS = {"mfu": 0.40, "peak_mem_fraction": 0.60}  # MFU for the BCO run; memory for every run
RUNS = {  # name: train.py overrides (BCO with the reference log-probs precomputed is train.py's default)
    "bco_precomputed": ["loss=bco", "speed.precompute_reference=true"],
    "dpo_live_reference": ["loss=dpo", "speed.precompute_reference=false"],
    # ZeRO-3: the live reference sharded for inference, the policy gathered after fit and written by
    # save_pretrained in bf16 shards of 1 GB (4 for this model); a third of the steps
    "bco_zero3_save": ["loss=bco", "speed.precompute_reference=false", "save_policy=true",
                       "model.max_shard_size=1GB"],
}
GPU_TRAINER = {"bco_zero3_save": "deepspeed_zero3"}  # the others: deepspeed_zero2


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


def flops_params(cfg: dict) -> int:
    """N: the parameters a token's matmuls touch, non-embedding + LM head (tied or not, the head is a matmul)."""
    h, heads, kv = cfg["hidden_size"], cfg["num_heads"], cfg["num_kv_heads"]
    head_dim = h // heads
    attn = h * head_dim * (2 * heads + 2 * kv)  # q and o: heads x head_dim; k and v: kv heads x head_dim
    return cfg["num_layers"] * (attn + 3 * h * cfg["intermediate_size"]) + h * cfg["vocab"]


def device_info() -> dict:
    """The GPU's name, memory and bf16 peak, asked in a throwaway process so this one holds no CUDA context."""
    probe = ("import json, torch; ok = torch.cuda.is_available(); p = torch.cuda.get_device_properties(0) if ok "
             "else None; print(json.dumps({'name': p.name if ok else 'cpu', 'total_memory': p.total_memory if ok "
             "else None}))")
    info = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                     timeout=120).stdout.strip().splitlines()[-1])
    info["peak_bf16_flops"] = next((v for k, v in PEAK_BF16.items() if k in info["name"]), None)
    return info


def train_command(name: str, model_dir: Path, pairs: Path, tmp: Path, args) -> list[str]:
    """`python train.py ...` for one run; the trainer, precision and sizes are the only difference CPU/GPU."""
    hardware = (["trainer=cpu", "trainer.precision=bf16-mixed"] if args.cpu_smoke  # DeepSpeed: bf16-mixed
                else [f"trainer={GPU_TRAINER.get(name, 'deepspeed_zero2')}", "trainer.devices=1"])
    steps = max(2, args.steps // 3) if name in GPU_TRAINER else args.steps
    return [sys.executable, str(ROOT / "train.py"), "model=hf", f"model.path={model_dir}", "model.dtype=bfloat16",
            "data=rectified_4k", f"data.path={pairs}", f"data.batch_size={args.batch}", *hardware,
            f"trainer.accumulate_grad_batches={args.accumulate}", f"trainer.max_steps={steps}",
            "trainer.max_epochs=1", "trainer.log_every_n_steps=1", "trainer.callbacks=[]",  # no checkpoints
            "speed.gradient_checkpointing=true", f"speed.reference_cache_dir={tmp / 'ref_cache'}",
            f"optim.lr={args.lr}", "logger=csv", "save_policy=false", "eval.cache_base=false", *RUNS[name],
            f"hydra.run.dir={tmp / name}"]  # the run's own overrides last: they win


def read_run(run_dir: Path) -> dict:
    """Steps, the last logged rates, memory and the loss curve of one finished run, from its own files."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    train = metrics.get("train", {})
    return {"steps": metrics.get("steps", 0), "tokens": train.get("train/tokens"),
            "tokens_per_s": train.get("train/tokens_per_s"), "peak_mem_gb": train.get("train/peak_mem_gb"),
            "fit_seconds": metrics.get("seconds", {}).get("fit"),
            "loss_curve": [[row["step"], round(row["train/loss"], 5)] for row in log if "train/loss" in row]}


def run_train(name: str, model_dir: Path, pairs: Path, tmp: Path, args, device: dict, n_params: int) -> dict:
    """One train.py process; its figures against the targets, or its error and the tail of its output."""
    cmd = train_command(name, model_dir, pairs, tmp, args)
    print("$ python train.py", " ".join(cmd[2:]), flush=True)
    # this checkout's spot first, whichever one is installed: the check is of the train.py next to it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    (tmp / f"{name}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"train.py exited {proc.returncode}:\n" + "\n".join(proc.stderr.splitlines()[-15:]))
    out = {"wall_seconds": round(time.perf_counter() - t0, 1), **read_run(tmp / name)}
    policy = tmp / name / "policy"
    if policy.exists():  # the saved policy: its shards and the dtype config.json records
        out["saved_policy"] = {"shards": sorted(p.name for p in policy.glob("*.safetensors")),
                               "dtype": json.loads((policy / "config.json").read_text()).get("dtype")}
    if not out["steps"] or not out["tokens_per_s"]:
        raise RuntimeError(f"train.py trained {out['steps']} steps, tokens/s {out['tokens_per_s']}")
    live_reference = "speed.precompute_reference=false" in RUNS[name]
    flops_per_token = (6 + 2 * live_reference) * n_params
    if device["peak_bf16_flops"]:
        out["mfu"] = round(out["tokens_per_s"] * flops_per_token / device["peak_bf16_flops"], 4)
    if device["total_memory"] and out["peak_mem_gb"] is not None:
        out["peak_mem_fraction"] = round(out["peak_mem_gb"] * 1e9 / device["total_memory"], 4)
    out["targets"] = targets_met(name, out)
    return out


def targets_met(name: str, out: dict) -> dict:
    """{target: met?} for what this run has figures for (none on CPU)."""
    met = {}
    if name.startswith("bco") and "mfu" in out:
        met[f"mfu >= {TARGETS['mfu']:.0%}"] = out["mfu"] >= TARGETS["mfu"]
    if "peak_mem_fraction" in out:
        met[f"peak memory < {TARGETS['peak_mem_fraction']:.0%} of the card"] = (
            out["peak_mem_fraction"] < TARGETS["peak_mem_fraction"])
    return met


def section(results: dict, name: str, fn) -> None:
    """Runs one part; its result or its error (last traceback lines) goes into `results[name]`."""
    t0 = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as e:  # noqa: BLE001 - a failed part is reported, the others still run
        results[name] = {"error": f"{type(e).__name__}: {e}"[-2000:],
                         "traceback": traceback.format_exc().splitlines()[-4:]}
    results[name + "_seconds"] = round(time.perf_counter() - t0, 1)
    if "error" in (results[name] if isinstance(results[name], dict) else {}):
        print(f"== {name} FAILED ({results[name + '_seconds']} s)\n{results[name]['error']}", flush=True)
    else:
        print(f"== {name} ({results[name + '_seconds']} s)", flush=True)


def report(results: dict) -> None:
    """A table of the runs, their loss curves, and the targets."""
    print(f"\n{'run':<20} {'steps':>5} {'tokens/s':>10} {'MFU':>7} {'peak GB':>8} {'% card':>7} {'wall s':>7}")
    for name in RUNS:
        r = results.get(name, {})
        if "error" in r or not r:
            print(f"{name:<20} FAILED")
            continue
        mfu, frac = (f"{r[k]:.1%}" if k in r else "-" for k in ("mfu", "peak_mem_fraction"))
        mem = f"{r['peak_mem_gb']:.1f}" if r.get("peak_mem_gb") is not None else "-"
        print(f"{name:<20} {r['steps']:>5} {r['tokens_per_s']:>10.0f} {mfu:>7} {mem:>8} {frac:>7} "
              f"{r['wall_seconds']:>7}")
    for name in RUNS:
        curve = results.get(name, {}).get("loss_curve")
        if curve:
            print(f"loss {name}: " + " ".join(f"{s}:{v:.4f}" for s, v in curve))
    print(f"targets: MFU >= {TARGETS['mfu']:.0%} (BCO), peak memory < {TARGETS['peak_mem_fraction']:.0%} of the card"
          + ("" if results["device"]["total_memory"] else " (not measured on CPU)"))
    for name in RUNS:
        for target, met in results.get(name, {}).get("targets", {}).items():
            print(f"  {name}: {target}: {'met' if met else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model on CPU: checks the code path only")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per run (trainer.max_steps)")
    ap.add_argument("--batch", type=int, default=4, help="pairs per micro batch (data.batch_size)")
    ap.add_argument("--accumulate", type=int, default=2, help="micro batches per step (deepspeed_zero2's 2)")
    ap.add_argument("--length", type=int, default=2048, help="characters (= tokens) per answer, roughly")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per train.py run")
    ap.add_argument("--keep", type=Path, help="keep the model, pairs and run directories here")
    args = ap.parse_args()
    if args.cpu_smoke:
        args.steps, args.batch, args.accumulate, args.length = min(args.steps, 6), 2, 1, min(args.length, 128)
    # the smoke trains on the CPU even where a GPU is visible: no GPU figures, no targets
    device = {"name": "cpu", "total_memory": None, "peak_bf16_flops": None} if args.cpu_smoke else device_info()
    if device["total_memory"] is None and not args.cpu_smoke:
        sys.exit("error: no GPU visible; run with --cpu-smoke to check the code path on CPU")
    cfg = TINY if args.cpu_smoke else QWEN3_17B
    results: dict = {"device": device, "args": {k: str(v) for k, v in vars(args).items()}, "model": cfg,
                     "flops_params": flops_params(cfg), "targets": TARGETS}
    section(results, "memory_qwen3_8b_8x80gb", memory_arithmetic)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.keep or Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        model_dir, pairs = tmp / "model", tmp / "pairs.jsonl"
        section(results, "model_dir", lambda: build_model_dir(cfg, model_dir, dtype="bfloat16"))
        pairs.write_text("".join(json.dumps(p) + "\n" for p in synthetic_pairs(
            args.steps * args.batch * args.accumulate, args.length)))
        for name in RUNS:
            section(results, name, lambda name=name: run_train(name, model_dir, pairs, tmp, args, device,
                                                               results["flops_params"]))
    report(results)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(json.dumps(results, indent=1))
    if any("error" in results[name] for name in RUNS):
        sys.exit(1)
    if not all(met for name in RUNS for met in results[name]["targets"].values()):
        sys.exit(2)


if __name__ == "__main__":
    main()
