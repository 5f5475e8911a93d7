"""Generation engines side by side: transformers' generate (hf), vLLM in process, and a vLLM server, on the same
prompts and the same machine in one run. Prints prompts/s, generated tokens/s, engine start, and the ratio to hf.

    python benchmarks/bench_generation.py                       # toy base, CPU: rectify sampling + evaluation
    python benchmarks/bench_generation.py --model <dir> --device cuda --engines hf vllm --prompts 2048
    python benchmarks/bench_generation.py --projection          # the arithmetic for Qwen3-8B, nothing run
    python benchmarks/bench_generation.py --model smollm2 --engines hf vllm vllm:0-1 --prompts 64 --max-new-tokens 256

Two workloads, as the project runs them: rectify's sampling (temperature 0.7, top_p 0.8, top_k 20, one sample
per problem) and evaluation (greedy) on toy in-domain problems. On a 0.8M-parameter model on CPU an engine buys
nothing (the model is too small for batching to matter); the numbers that matter come from a GPU and a real-size
model (--model: any directory, e.g. random weights saved from Qwen3-1.7B's config). `--model smollm2` is the
real pretrained model of model=smollm2 (prepared from its GGUF file as every entry point does) on the arith
world's validation prompts at the level and instruction conf/problems/arith.yaml names: real text of realistic
length, the workload where CPU generation must go through vLLM. `vllm:<cpus>` runs vLLM with its compute
threads bound to those cores (the engine's `cpu_cores` option: "0-1", or "all"; vLLM's own `auto` keeps one
core for its scheduler, which on a 2-core machine is half of it). Speeds are measured, never asserted: these
machines are shared.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_train.real_model

WORKLOADS = {"rectify sampling (T 0.7)": dict(temperature=0.7, top_p=0.8, top_k=20),
             "evaluation (greedy)": dict(temperature=0.0)}


def projection(problems: int = 17_000, tokens: int = 4096, hf_step_s: float = 0.040, batch: int = 64,
               vllm_tok_s: tuple[float, float] = (5_000, 12_000)) -> list[str]:
    """Hours to sample `problems` answers of up to `tokens` tokens on one H100 with Qwen3-8B: HF's static batches
    run until their longest row (about `hf_step_s` per decode step for `batch` rows); vLLM keeps the batch full
    at the output rates its users report for an 8B model."""
    hf_hours = problems / batch * tokens * hf_step_s / 3600
    mean_tokens = tokens / 2  # answers stop early on average; HF pays for the longest row of each batch anyway
    lo, hi = (problems * mean_tokens / r / 3600 for r in vllm_tok_s[::-1])
    return [f"Qwen3-8B, one H100, {problems:,} problems x up to {tokens} tokens:",
            f"  hf generate: {problems / batch:.0f} batches x {tokens} steps x {hf_step_s * 1000:.0f} ms = "
            f"{hf_hours:.1f} h",
            f"  vLLM at {vllm_tok_s[0]:,.0f}-{vllm_tok_s[1]:,.0f} output tokens/s (mean {mean_tokens:.0f} tokens): "
            f"{lo:.1f}-{hi:.1f} h"]


def world(model: str, n: int):
    """(model directory, chat format, prompts, max_model_len): the toy base's in-domain problems, or for
    `smollm2` the real model on the arith world's validation prompts as conf/problems/arith.yaml sets them."""
    from omegaconf import OmegaConf

    from spot.chat import ChatFormat
    from spot.models import load_tokenizer

    if model != "smollm2":
        from spot.toy.suites import toy_test_problems

        return model, ChatFormat(load_tokenizer(model)), [p.text for p in toy_test_problems(n, seed=7)], 320
    from bench_train import real_model

    from spot.arith.suites import arith_suite

    cfg = real_model("smollm2")
    world = OmegaConf.load(ROOT / "conf" / "problems" / "arith.yaml")
    prompts = arith_suite("val", n, world.level, instruction=world.instruction).prompts
    return cfg.path, ChatFormat(load_tokenizer(cfg.path), cfg.enable_thinking, cfg.problem_template), prompts, 2048


def open_engine(name: str, model: str, tokenizer, device: str, port: int | None, max_model_len: int = 320,
                cpu_cores: str | None = None):
    from spot.engines.hf import HFEngine
    from spot.engines.server import ServerEngine
    from spot.engines.vllm_offline import VLLMEngine

    cpu = dict(dtype="float32", max_model_len=max_model_len, gpu_memory_utilization=0.1, enforce_eager=True,
               enable_chunked_prefill=False)  # see conf/generation/vllm_cpu.yaml and cpu.yaml
    if name == "hf":
        from spot.models import load_model

        loaded = load_model(model, "float32" if device == "cpu" else "bfloat16")
        return HFEngine(loaded if device == "cpu" else loaded.to(device), tokenizer)
    if name == "vllm":
        return VLLMEngine(model, **(cpu if device == "cpu" else {}), cpu_cores=cpu_cores)
    return ServerEngine(model, base_url=f"http://127.0.0.1:{port}/v1")


def start_server(model: str, device: str, max_model_len: int = 320) -> tuple[subprocess.Popen, int, float]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    extra = ["--dtype", "float32", "--max-model-len", str(max_model_len), "--enforce-eager",
             "--gpu-memory-utilization", "0.1", "--no-enable-chunked-prefill"]
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model, "--host",
                             "127.0.0.1", "--port", str(port), *(extra if device == "cpu" else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while proc.poll() is None and time.perf_counter() - t0 < 900:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2).status_code == 200:
                return proc, port, time.perf_counter() - t0
        except httpx.HTTPError:
            time.sleep(1)
    raise SystemExit("vllm server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "assets" / "toy-base"), help="a directory, or smollm2")
    parser.add_argument("--engines", nargs="+", default=["hf", "vllm", "server"])
    parser.add_argument("--prompts", type=int, default=512)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--projection", action="store_true", help="print the 8B arithmetic only")
    args = parser.parse_args()
    print("\n".join(projection()))
    if args.projection:
        return

    from spot.generation import Sampling, generate

    model, chat, problems, max_model_len = world(args.model, args.prompts)
    rows, server = [], None
    for name in args.engines:
        name, _, bind = name.partition(":")  # vllm:0-1 -> the engine's cpu_cores option
        t0 = time.perf_counter()
        if name == "server":
            server, port, _ = start_server(model, args.device, max_model_len)
        engine = open_engine(name, model, chat.tokenizer, args.device, port if server else None, max_model_len,
                             bind or None)
        start = time.perf_counter() - t0
        for workload, settings in WORKLOADS.items():
            sampling = Sampling(max_new_tokens=args.max_new_tokens, batch_size=64, **settings)
            t1 = time.perf_counter()
            out = generate(engine, chat, problems, sampling, seed=0, progress=False)
            seconds = time.perf_counter() - t1
            tokens = sum(len(chat.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out)
            rows.append({"engine": f"{name}:{bind}" if bind else name, "workload": workload, "start_s": start,
                         "s": seconds, "prompts_s": len(out) / seconds, "tokens_s": tokens / seconds, "out": out})
        engine.close()
        if server is not None:
            server.terminate()
            server.wait(timeout=60)
            server = None
    hf = {r["workload"]: r for r in rows if r["engine"] == "hf"}
    what = "arith validation" if args.model == "smollm2" else "toy"
    print(f"\n{args.prompts} {what} problems, up to {args.max_new_tokens} new tokens, {model}, {args.device}")
    print("| engine | workload | start s | prompts/s | tokens/s | x hf | greedy text = hf's |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ratio = r["prompts_s"] / hf[r["workload"]]["prompts_s"] if r["workload"] in hf else float("nan")
        same = "-"  # sampled text differs by design (each engine's own random stream); greedy must agree
        if r["workload"] == "evaluation (greedy)" and r["workload"] in hf and r["engine"] != "hf":
            same = f"{sum(a == b for a, b in zip(r['out'], hf[r['workload']]['out']))}/{len(r['out'])}"
        print(f"| {r['engine']} | {r['workload']} | {r['start_s']:.0f} | {r['prompts_s']:.1f} | "
              f"{r['tokens_s']:.0f} | {ratio:.2f} | {same} |")


if __name__ == "__main__":
    main()
