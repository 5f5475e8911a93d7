"""Training a real pretrained model on this CPU: SmolLM2-135M-Instruct (model=smollm2) in fp32, bf16-mixed and LoRA.

    python benchmarks/bench_real.py                    # 8 steps each, rows interleaved, one table
    python benchmarks/bench_real.py --steps 4 --rows fp32,bf16-mixed

Each row is `python train.py model=smollm2 loss=bco ...` in its own process, on the same GSM8K pairs (the
repository's slice, assets/gsm8k: a reference solution as chosen, a model's wrong one as rejected), the same
seed, batch and order; only the precision (or LoRA) differs. For each it reports the steady tokens/s train.py
logs (train/tokens_per_s: steps 2..k), the process's peak resident memory (ru_maxrss of the child), and its
first steps' losses. As ratios to the fp32 row, since this machine is shared and noisy.

bf16-mixed is accepted as the CPU default only if its first steps' losses stay within --loss-tol (relative,
2% unless given; stated here before any run) of fp32's: bf16 compute rounds activations to 8 bits of
mantissa, and a loss that moves more than that in 8 steps would change what training does, not only its speed.
The verdict is printed under the table; the precision a CPU run uses is the user's choice (trainer.precision).

Where the memory goes (printed for fp32, from the config, not measured): weights, gradients and AdamW's two
moments are 4 x 4 bytes a parameter; the logits of the 49,152-entry vocabulary are computed on completion
positions only (spot.logps); the reference log-probs are precomputed (no second model).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import gsm8k_pairs  # noqa: E402  (this folder: the pairs the TRL comparison trains on too)

ROWS = {
    "fp32": ["trainer.precision=32-true"],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "lora-r16": ["trainer.precision=32-true", "model.lora.r=16", "model.lora.alpha=32"],
}


def run_row(name: str, args, pairs: Path, work: Path) -> dict:
    out = work / name
    cmd = [sys.executable, "-c", CHILD, str(ROOT / "train.py"), "model=smollm2", "loss=bco", "data=rectified_4k",
           f"data.path={pairs}", f"data.batch_size={args.batch}", f"data.max_length={args.max_length}",
           "data.max_prompt_length=192", f"trainer.max_steps={args.steps}", "trainer.log_every_n_steps=1",
           "logger=csv", "save_policy=false", "eval.cache_base=false", f"speed.reference_cache_dir={work / 'ref'}",
           "checkpoint.every_minutes=null", "trainer.callbacks=[]", f"hydra.run.dir={out}", *ROWS[name]]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS":
                                                                              str(args.threads)})
    if proc.returncode != 0:
        return {"row": name, "error": proc.stderr.strip().splitlines()[-1:]}
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    rates = [r["train/tokens_per_s"] for r in rows if "train/tokens_per_s" in r]
    return {"row": name, "tokens_per_s": rates[-1] if rates else None, "peak_rss_gb": float(proc.stdout.split()[-1]),
            "losses": losses, "wall_s": round(time.time() - t0, 1)}


# runs train.py in this child and prints its own child's peak RSS (GB) last, so each row is measured alone
CHILD = ("import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
         "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n"
         "    code = e.code\nelse:\n    code = 0\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)\nsys.exit(code or 0)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--loss-tol", type=float, default=0.02)
    a = ap.parse_args()
    from spot.rows import write_jsonl

    work = Path(tempfile.mkdtemp(prefix="bench-real-"))
    pairs = work / "pairs.jsonl"
    write_jsonl(pairs, gsm8k_pairs(a.steps * a.batch, max_chars=4 * a.max_length))  # data.max_length cuts tokens
    results = [run_row(name, a, pairs, work) for name in a.rows.split(",")]
    base = next((r for r in results if r["row"] == "fp32" and "error" not in r), None)
    print(f"SmolLM2-135M-Instruct, BCO, {a.steps} steps of {a.batch} pairs (<= {a.max_length} tokens), "
          f"{a.threads} thread(s); ratios to fp32")
    print("| row | tokens/s | x fp32 | peak RSS GB | x fp32 | max rel. loss diff vs fp32 |\n|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['row']} | failed: {r['error']} |")
            continue
        speed = r["tokens_per_s"] / base["tokens_per_s"] if base and r["tokens_per_s"] else float("nan")
        mem = r["peak_rss_gb"] / base["peak_rss_gb"] if base else float("nan")
        diff = max(abs(x - y) / abs(y) for x, y in zip(r["losses"], base["losses"])) if base else float("nan")
        print(f"| {r['row']} | {r['tokens_per_s']:.0f} | {speed:.2f} | {r['peak_rss_gb']:.2f} | {mem:.2f} | "
              f"{diff:.4f} |")
    bf16 = next((r for r in results if r["row"] == "bf16-mixed" and "error" not in r), None)
    if base and bf16:
        diff = max(abs(x - y) / abs(y) for x, y in zip(bf16["losses"], base["losses"]))
        verdict = "within" if diff <= a.loss_tol else "outside"
        print(f"\nbf16-mixed's first {len(bf16['losses'])} losses are {verdict} {a.loss_tol:.0%} of fp32's "
              f"(max {diff:.2%})")
    out = Path(os.environ.get("OUT", work)) / "bench_real.json"
    out.write_text(json.dumps({"args": vars(a), "rows": results}, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
