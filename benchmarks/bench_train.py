"""Pair training throughput, peak memory and losses: this project (BCO, DPO, BCE) against TRL's DPOTrainer
(loss_type sigmoid = DPO, bco_pair = BCE), same model, pairs, batch size, optimizer and steps (issue #5).

    python benchmarks/bench_train.py                                  # 3 models x 5 rows, ~65 min on 2 cores
    python benchmarks/bench_train.py --models toy-5m --steps 6 --ablation
    python benchmarks/bench_train.py --models toy-5m --steps 3 --rows spot:dpo,trl:sigmoid   # a quick look
    python benchmarks/bench_train.py --models smollm2 --steps 4 --batch 2 --repeat 1 --rows spot:dpo,trl:sigmoid

Each row runs in its own subprocess, so its peak RSS (ru_maxrss) is its own. Both trainers start from the same
saved weights, see the same pairs in the same order (TRL with train_sampling_strategy=sequential, fed in the
order this project's sampler draws), use AdamW (betas 0.9/0.95, no weight decay), a constant learning rate and
gradient clipping at 1.0 in float32, so their per-step losses must agree: DPO with TRL's sigmoid, BCE with TRL's
bco_pair. BCO equals BCE at step 1 (its reward shift starts at 0) and differs after, by design.

Rows of this project run as its defaults for speed: reference log-probs precomputed by the policy before
training (their time is the "ref pass" column, not in pairs/s), and the `shared` layout (each pair's common
prefix once, no padding between sequences). TRL runs its defaults: a live reference model, padded batches.
`--ablation` adds rows that switch this project's levers off one at a time, TRL with its own
precompute_ref_log_probs, and TRL with its shipped defaults (bf16 autocast and gradient checkpointing, which the
float32 comparison rows turn off), to show where the time goes.

Data: real GSM8K problems (assets/gsm8k, the repository's slice), the reference solution as chosen and a model's
wrong solution as rejected, cut to --max-chars per answer; the models use a character tokenizer (one token per
character), the 152k-vocabulary model the same characters padded with unused entries to Qwen's 151,936 (the LM
head, not the text, is what makes that model's memory and time). `smollm2` is the real pretrained
SmolLM2-135M-Instruct of model=smollm2 (its BPE tokenizer, chat template and 49,152-entry vocabulary), prepared
from its GGUF file as the entry points do.
`--pairs data/toy/pairs.jsonl` trains on rectified pairs instead, the data SPoT is for: chosen and rejected share
the policy's reasoning up to the first wrong step, which the `shared` layout computes once.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "assets" / "gsm8k" / "example_model_solutions.jsonl"
MODELS = {  # Qwen3 configs; `vocab` pads the character vocabulary with unused entries
    "toy-5m": dict(hidden_size=256, num_layers=6, num_heads=4, num_kv_heads=2, intermediate_size=768),
    "toy-20m": dict(hidden_size=512, num_layers=6, num_heads=8, num_kv_heads=4, intermediate_size=1536),
    "vocab-152k": dict(hidden_size=256, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=768,
                       vocab=151_936),
    "micro": dict(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=64),  # tests
}
DEFAULT_MODELS = "toy-5m,toy-20m,vocab-152k"
ROWS = ["spot:bco", "spot:dpo", "spot:bce", "trl:sigmoid", "trl:bco_pair"]
ABLATION = ["spot:dpo:live+padded", "spot:dpo:padded", "spot:dpo:packed", "trl:sigmoid:precompute",
            "trl:sigmoid:defaults"]
SAME_LOSS = {"dpo": "sigmoid", "bce": "bco_pair", "bco": "bco_pair"}  # the TRL row a loss is checked against
BETA, LR = 0.1, 1e-5


def gsm8k_pairs(n: int, max_chars: int) -> list[dict]:
    """(question, reference solution, first wrong model solution), answers cut to max_chars."""
    if not GSM8K.exists():
        sys.exit(f"error: {GSM8K} not found (the repository's GSM8K slice; see assets/gsm8k/README.md)")
    pairs = []
    for line in GSM8K.read_text().splitlines():
        row = json.loads(line)
        wrong = [v["solution"] for v in row.values() if isinstance(v, dict) and not v["is_correct"]]
        if wrong:
            pairs.append({"prompt": row["question"], "chosen": row["ground_truth"][:max_chars],
                          "rejected": wrong[0][:max_chars]})
        if len(pairs) == n:
            break
    return pairs


def file_pairs(path: Path, n: int) -> list[dict]:
    """The first n rows of a pair file (e.g. data/toy/pairs.jsonl from `python rectify.py`: rectified pairs,
    whose chosen and rejected share the policy's reasoning up to the first wrong step)."""
    if not path.exists():
        sys.exit(f"error: --pairs {path} not found (python rectify.py writes data/toy/pairs.jsonl)")
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n]]
    if len(rows) < n:
        sys.exit(f"error: --pairs {path} has {len(rows)} rows, --steps x --batch needs {n}")
    return [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]


def real_model(name: str):
    """The model node of a conf/model/ config that names a GGUF file (smollm2), its directory made once and its
    path made absolute; else None. bench_generation.py uses it too."""
    from omegaconf import OmegaConf

    from spot.gguf import prepare

    file = ROOT / "conf" / "model" / f"{name}.yaml"
    if not file.is_file() or "gguf" not in (cfg := OmegaConf.load(file).get("model") or {}):
        return None
    cfg.path = str(ROOT / cfg.path)
    prepare(cfg)
    return cfg


def build_model_dir(name: str | dict, out: Path, dtype: str = "float32") -> None:
    """A Qwen3 model with random weights and its character tokenizer, saved like a real checkpoint.

    `name` is a key of MODELS or a spec of the same form; `dtype` is the dtype of the saved weights."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from spot.models import DTYPES
    from spot.toy.model import CHARS, CHAT_TEMPLATE, SPECIALS, build_model

    spec = dict(MODELS[name] if isinstance(name, str) else name)
    vocab_size = spec.pop("vocab", len(SPECIALS) + len(CHARS))
    tokens = SPECIALS + CHARS + [f"<unused{i}>" for i in range(vocab_size - len(SPECIALS) - len(CHARS))]
    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.chat_template = CHAT_TEMPLATE
    model = build_model(tok, max_positions=4096, **spec)
    model.to(DTYPES[dtype]).save_pretrained(out)
    tok.save_pretrained(out)


def training_order(model_dir: Path, pairs_path: Path, batch: int) -> list[int]:
    """The file rows in the order this project's data module feeds them at epoch 0 (TRL is given the same)."""
    from spot.chat import ChatFormat
    from spot.data import PairDataModule, encode
    from spot.models import load_tokenizer

    chat = ChatFormat(load_tokenizer(str(model_dir)))
    dm = PairDataModule(str(pairs_path), chat, pairs=True, batch_size=batch, max_length=8192,
                        max_prompt_length=8192)
    dm.setup()
    rows = [json.loads(line) for line in pairs_path.read_text().splitlines()]
    index = {tuple(encode(chat, r["prompt"], r["chosen"], 8192, 8192)[0]): i for i, r in enumerate(rows)}
    sampler = dm.train_dataloader().sampler
    sampler.set_epoch(0)
    return [index[tuple(dm.train_set[i][0][0])] for i in sampler]


def run_worker(spec: dict, timeout: int) -> dict:
    """One worker in its own process: its RESULT line, or {"error": the last line of its stderr}."""
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                          text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    return json.loads(lines[-1][len("RESULT "):])


def run_row(row: str, model_dir: Path, data_dir: Path, args) -> dict:
    spec = {"row": row, "model_dir": str(model_dir), "data_dir": str(data_dir), "steps": args.steps,
            "batch": args.batch, "threads": args.threads}
    return {"row": row, **run_worker(spec, args.timeout)}


# ----------------------------------------------------------------------------------------------- the workers

def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spot_worker(spec: dict, loss: str, options: set[str]) -> dict:
    """This project's real training path: PairDataModule, SPoTModule and ReferenceLogps under a Lightning Trainer."""
    import lightning as L

    from spot import losses
    from spot.chat import ChatFormat
    from spot.data import PairDataModule
    from spot.models import load_model, load_tokenizer
    from spot.module import OptimConfig, SPoTModule
    from spot.refcache import ReferenceLogps
    from spot.reference import PRECOMPUTED, Reference

    live = "live" in options
    layout = next((o for o in ("padded", "packed", "shared") if o in options), "shared")
    fn = losses.Objective(getattr(losses, loss), beta=BETA)
    module = SPoTModule(load_model(spec["model_dir"]), fn,
                        reference=Reference.live(load_model(spec["model_dir"])) if live else Reference(PRECOMPUTED),
                        reward_shift=losses.RewardShift() if fn.needs_shift else None,
                        optim=OptimConfig(lr=LR, betas=(0.9, 0.95), weight_decay=0.0, warmup_ratio=0.0,
                                          min_lr_ratio=1.0))
    dm = PairDataModule(str(Path(spec["data_dir"]) / "pairs.jsonl"), ChatFormat(load_tokenizer(spec["model_dir"])),
                        pairs=True, batch_size=spec["batch"], max_length=8192, max_prompt_length=8192,
                        layout=layout)
    record = {"times": [], "cpu": [], "losses": [], "slots": []}

    class Timer(L.Callback):
        def on_train_start(self, trainer, pl_module):
            record["rss_start_mb"], record["t0"], record["c0"] = rss_now_mb(), time.perf_counter(), time.process_time()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            record["times"].append(time.perf_counter())
            record["cpu"].append(time.process_time())
            record["losses"].append(float(outputs["loss"]))
            record["slots"].append(batch["input_ids"].numel())

    with tempfile.TemporaryDirectory() as cache:
        refs = ReferenceLogps(cache)
        L.Trainer(accelerator="cpu", devices=1, max_steps=spec["steps"], gradient_clip_val=1.0, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                  num_sanity_val_steps=0, limit_val_batches=0, callbacks=[Timer(), refs]).fit(module, dm)
    record["ref_pass_s"] = refs.report.get("train", {}).get("seconds")
    return record


def trl_worker(spec: dict, loss: str, options: set[str]) -> dict:
    """TRL's DPOTrainer as its documentation sets it up, with an explicit reference model (built from a saved
    config, it would otherwise try to download one), or with precompute_ref_log_probs under --ablation."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from spot.chat import ChatFormat
    from spot.models import load_tokenizer

    tok = load_tokenizer(spec["model_dir"])
    rows = [json.loads(line) for line in (Path(spec["data_dir"]) / "pairs_in_order.jsonl").read_text().splitlines()]
    # the prompt as this project renders it (chat template, no tokenization difference for a character tokenizer)
    data = Dataset.from_list([{"prompt": ChatFormat(tok).prompt_text(r["prompt"]), "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in rows])
    precompute = "precompute" in options
    # TRL's DPOConfig defaults to bf16 autocast and gradient checkpointing; the comparison is float32 without
    # checkpointing on both sides, unless the row asks for TRL's defaults
    shipped = {} if "defaults" in options else {"bf16": False, "gradient_checkpointing": False}
    record = {"times": [], "cpu": [], "losses": [], "slots": []}

    class Recording(DPOTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            record["losses"].append(float(out[0] if return_outputs else out))
            record["slots"].append(inputs["input_ids"].numel())
            return out

    class Timer(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            record["rss_start_mb"], record["t0"], record["c0"] = rss_now_mb(), time.perf_counter(), time.process_time()

        def on_step_end(self, args, state, control, **kw):
            record["times"].append(time.perf_counter())
            record["cpu"].append(time.process_time())

    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(output_dir=out, per_device_train_batch_size=spec["batch"], max_steps=spec["steps"],
                           learning_rate=LR, lr_scheduler_type="constant", warmup_steps=0, adam_beta1=0.9,
                           adam_beta2=0.95, weight_decay=0.0, max_grad_norm=1.0, beta=BETA, loss_type=[loss],
                           max_length=None, logging_steps=1, save_strategy="no", report_to="none", use_cpu=True,
                           train_sampling_strategy="sequential", disable_tqdm=True, seed=0,
                           precompute_ref_log_probs=precompute, **shipped)
        t0 = time.perf_counter()
        trainer = Recording(model=AutoModelForCausalLM.from_pretrained(spec["model_dir"]),
                            ref_model=None if precompute else AutoModelForCausalLM.from_pretrained(spec["model_dir"]),
                            args=config, train_dataset=data, processing_class=tok, callbacks=[Timer()])
        record["ref_pass_s"] = round(time.perf_counter() - t0, 1) if precompute else None  # includes tokenizing
        trainer.train()
    return record


def grad_worker(spec: dict) -> dict:
    """The first batch's loss and gradient, this project against TRL, with no optimizer step in between.

    The per-step losses of the training rows can only agree to float32 rounding as amplified by the steps before
    them (on random weights, lr 1e-5 moves these losses by order 1 a step). The gradient at the first batch is
    where the two objectives' numerics are compared directly: relative L2 difference, the largest entry
    difference, and how many entries have opposite signs (AdamW's first step moves those in opposite directions).
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from spot import losses
    from spot.chat import ChatFormat
    from spot.data import PairDataModule
    from spot.models import load_model, load_tokenizer
    from spot.module import SPoTModule
    from spot.reference import Reference

    loss, layout = spec["loss"], spec["layout"]
    tok = load_tokenizer(spec["model_dir"])
    rows = [json.loads(line) for line in (Path(spec["data_dir"]) / "pairs_in_order.jsonl").read_text().splitlines()]
    data = Dataset.from_list([{"prompt": ChatFormat(tok).prompt_text(r["prompt"]), "chosen": r["chosen"],
                               "rejected": r["rejected"]} for r in rows])
    with tempfile.TemporaryDirectory() as out:
        config = DPOConfig(output_dir=out, per_device_train_batch_size=spec["batch"], beta=BETA,
                           loss_type=[SAME_LOSS[loss]], max_length=None, report_to="none", use_cpu=True,
                           train_sampling_strategy="sequential", bf16=False, gradient_checkpointing=False)
        trl_model = load_model(spec["model_dir"])
        trainer = DPOTrainer(model=trl_model, ref_model=load_model(spec["model_dir"]), args=config,
                             train_dataset=data, processing_class=tok)
        trl_model.train()
        trl_loss = trainer.compute_loss(trl_model, next(iter(trainer.get_train_dataloader())))
        trl_loss.backward()

    fn = losses.Objective(getattr(losses, "bce" if loss == "bco" else loss), beta=BETA)
    module = SPoTModule(load_model(spec["model_dir"]), fn, reference=Reference.live(load_model(spec["model_dir"])))
    module.policy.train()
    dm = PairDataModule(str(Path(spec["data_dir"]) / "pairs.jsonl"), ChatFormat(tok), pairs=True,
                        batch_size=spec["batch"], max_length=8192, max_prompt_length=8192, layout=layout)
    dm.setup()
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(0)
    our_loss = fn(module.forward_logps(next(iter(loader)))).losses.mean()
    our_loss.backward()

    theirs = dict(trl_model.named_parameters())
    diff2 = ref2 = max_abs = 0.0
    flips = entries = 0
    for name, p in module.policy.named_parameters():
        g, h = p.grad, theirs[name].grad
        d = (g - h).double()
        diff2, ref2 = diff2 + d.square().sum().item(), ref2 + h.double().square().sum().item()
        max_abs = max(max_abs, d.abs().max().item())
        # entries AdamW's first step (about lr * sign(g) once |g| >> eps = 1e-8) moves in opposite directions
        flips += ((g * h < 0) & (g.abs().maximum(h.abs()) > 1e-8)).sum().item()
        entries += g.numel()
    return {"loss": loss, "layout": layout, "spot_loss": our_loss.item(), "trl_loss": trl_loss.item(),
            "grad_rel_l2": (diff2 / ref2) ** 0.5, "grad_max_abs": max_abs, "grad_norm": ref2 ** 0.5,
            "sign_flips": flips, "entries": entries}


def worker(spec: dict) -> None:
    import torch

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    if spec.get("grad_check"):
        print("RESULT " + json.dumps(grad_worker(spec)), flush=True)
        return
    trainer, loss, *rest = spec["row"].split(":")
    options = set(rest[0].split("+")) if rest else set()
    record = (spot_worker if trainer == "spot" else trl_worker)(spec, loss, options)
    times, cpu = [record["t0"], *record["times"]], [record["c0"], *record["cpu"]]
    result = {"row": spec["row"], "step_s": [b - a for a, b in zip(times, times[1:])],
              "cpu_s": [b - a for a, b in zip(cpu, cpu[1:])], "losses": record["losses"], "slots": record["slots"],
              "ref_pass_s": record["ref_pass_s"], "rss_start_mb": record["rss_start_mb"],
              "peak_rss_mb": peak_rss_mb(), "threads": torch.get_num_threads()}
    print("RESULT " + json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------- the table

def baseline_row(row: str) -> str:
    trainer, loss = row.split(":")[:2]
    return f"trl:{loss}" if trainer == "trl" else f"trl:{SAME_LOSS[loss]}"


def best_of(repeats: list[dict], batch: int) -> dict:
    """One row from its repeats: pairs/s from the median step time (step 1, a one-off warm-up, left out), best
    repeat kept (the machine is shared: slower repeats measure other people's jobs); CPU time the same way."""
    ok = [r for r in repeats if "error" not in r]
    if not ok:
        return repeats[0]
    median = lambda xs: statistics.median(xs[1:] or xs)
    best = dict(max(ok, key=lambda r: batch / median(r["step_s"])))
    best["pairs_s"] = batch / median(best["step_s"])
    best["pairs_cpu_s"] = max(batch / median(r["cpu_s"]) for r in ok)
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in ok)
    best["repeats"] = len(ok)
    return best


def summarise(results: list[dict], tokens_per_pair: float) -> list[dict]:
    """Throughput relative to the TRL row with the same loss, and the per-step loss differences to it."""
    ok = [r for r in results if "error" not in r]
    by_row = {r["row"]: r for r in ok}
    for r in ok:
        r["tokens_s"] = r["pairs_s"] * tokens_per_pair
        base = by_row.get(baseline_row(r["row"]))
        r["vs_trl"] = r["pairs_s"] / base["pairs_s"] if base else None
        r["vs_trl_cpu"] = r["pairs_cpu_s"] / base["pairs_cpu_s"] if base else None
        if base and not r["row"].startswith("trl") and len(base["losses"]) == len(r["losses"]):
            r["max_dloss"] = max(abs(a - b) for a, b in zip(r["losses"], base["losses"]))
    return results


def format_table(model: str, results: list[dict]) -> str:
    head = ("| model | trainer:loss[:options] | pairs/s | tokens/s | vs TRL | pairs/CPU-s | vs TRL (CPU) "
            "| positions/step | RSS start -> peak MB | ref pass s | loss step 1 / mid / last | max abs dloss vs TRL |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        if "error" in r:
            lines.append(f"| {model} | {r['row']} | error: {r['error']} |")
            continue
        ls = r["losses"]
        lossf = " / ".join(f"{ls[i]:.6f}" for i in (0, len(ls) // 2, len(ls) - 1))
        vs = f"{r['vs_trl']:.2f}x" if r.get("vs_trl") else "-"
        vs_cpu = f"{r['vs_trl_cpu']:.2f}x" if r.get("vs_trl_cpu") else "-"
        dl = f"{r['max_dloss']:.1e}" if "max_dloss" in r else "-"
        ref = "-" if r["ref_pass_s"] is None else f"{r['ref_pass_s']:.1f}"
        lines.append(f"| {model} | {r['row']} | {r['pairs_s']:.3f} | {r['tokens_s']:.0f} | {vs} "
                     f"| {r['pairs_cpu_s']:.3f} | {vs_cpu} "
                     f"| {statistics.mean(r['slots']):.0f} | {r['rss_start_mb']:.0f} -> {r['peak_rss_mb']:.0f} "
                     f"| {ref} | {lossf} | {dl} |")
    return "\n".join(lines)


def grad_table(name: str, model_dir: Path, data_dir: Path, args) -> tuple[str, list[dict]]:
    lines = ["| model | loss vs TRL | layout | loss (this project / TRL) | gradient norm | rel. L2 difference "
             "| max abs difference | opposite signs (|g| > 1e-8) |", "|---|---|---|---|---|---|---|---|"]
    results = []
    for loss in ("dpo", "bce"):
        for layout in ("shared", "padded"):
            spec = {"grad_check": True, "loss": loss, "layout": layout, "model_dir": str(model_dir),
                    "data_dir": str(data_dir), "batch": args.batch, "threads": args.threads}
            r = run_worker(spec, args.timeout)
            results.append(r)
            if "error" in r:
                lines.append(f"| {name} | {loss} | {layout} | error: {r['error']} |")
                continue
            lines.append(f"| {name} | {loss} vs {SAME_LOSS[loss]} | {layout} | {r['spot_loss']:.7f} / "
                         f"{r['trl_loss']:.7f} | {r['grad_norm']:.3e} | {r['grad_rel_l2']:.1e} "
                         f"| {r['grad_max_abs']:.1e} | {r['sign_flips']} of {r['entries']} |")
            print(lines[-1], flush=True)
    return "\n".join(lines), results


def prepare_data(model_dir: Path, data_dir: Path, pairs: list[dict], batch: int) -> float:
    """pairs.jsonl in source order, pairs_in_order.jsonl in training order; returns tokens per pair."""
    from spot.chat import ChatFormat
    from spot.data import encode
    from spot.models import load_tokenizer

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    order = training_order(model_dir, data_dir / "pairs.jsonl", batch)
    (data_dir / "pairs_in_order.jsonl").write_text("".join(json.dumps(pairs[i]) + "\n" for i in order))
    chat = ChatFormat(load_tokenizer(str(model_dir)))
    lengths = [len(encode(chat, p["prompt"], p[k], 8192, 8192)[0]) for p in pairs for k in ("chosen", "rejected")]
    return sum(lengths) / len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated, from {', '.join(MODELS)}, smollm2")
    ap.add_argument("--rows", default=None, help=f"trainer:loss[:option+option], comma-separated (default {ROWS})")
    ap.add_argument("--ablation", action="store_true", help=f"add {ABLATION}")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4, help="pairs per step")
    ap.add_argument("--max-chars", type=int, default=320, help="answers are cut to this many characters")
    ap.add_argument("--pairs", type=Path, default=None,
                    help="a pair file to use instead of GSM8K (reference vs wrong solution), e.g. data/toy/pairs.jsonl")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads per row (0: torch's default); 1 keeps CPU time meaningful on a shared box")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each row, interleaved; the fastest is kept")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per row")
    ap.add_argument("--json", default=os.environ.get("OUT") and str(Path(os.environ["OUT"]) / "bench_train.json"))
    ap.add_argument("--grad-check", action="store_true",
                    help="compare the first batch's loss and gradient with TRL's (dpo/sigmoid, bce/bco_pair) instead")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    rows = args.rows.split(",") if args.rows else ROWS + (ABLATION if args.ablation else [])
    n = args.steps * args.batch
    pairs = file_pairs(args.pairs, n) if args.pairs else gsm8k_pairs(n, args.max_chars)
    print(f"command: python benchmarks/bench_train.py {' '.join(sys.argv[1:])}")
    print(f"{len(pairs)} {args.pairs or 'GSM8K'} pairs, {args.batch} a step, {args.steps} steps, "
          f"{args.threads or 'default'} torch threads, best of {args.repeat}; load average {os.getloadavg()}")
    tables, everything = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            real = real_model(name)
            model_dir, data_dir = Path(real.path) if real else Path(tmp) / name, Path(tmp) / f"data-{name}"
            if not model_dir.exists():
                build_model_dir(name, model_dir)
            tokens_per_pair = prepare_data(model_dir, data_dir, pairs, args.batch)
            if args.grad_check:
                table, results = grad_table(name, model_dir, data_dir, args)
                tables.append(table)
                everything.append({"model": name, "grad_check": results})
                continue
            runs: dict[str, list[dict]] = {row: [] for row in rows}
            for _ in range(args.repeat):  # interleaved, so that a busy spell on the machine hits every row
                for row in rows:
                    runs[row].append(run_row(row, model_dir, data_dir, args))
                    print(f"  {name} {row}: {runs[row][-1].get('error', 'ok')}", flush=True)
            results = [best_of(runs[row], args.batch) for row in rows]
            summarise(results, tokens_per_pair)
            tables.append(format_table(name, results))
            everything.append({"model": name, "tokens_per_pair": tokens_per_pair, "rows": results})
    print(f"load average after: {os.getloadavg()}\n")
    print("\n\n".join(tables))
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "models": everything}, indent=1, default=str))


if __name__ == "__main__":
    main()
