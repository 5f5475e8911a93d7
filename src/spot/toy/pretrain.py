"""Builds the toy base policy: a tiny Qwen3 model taught the house style, arithmetic and the prior tasks.

The shipped checkpoint was built in four stages, each continuing from the one before (its pretrain.json
records the commands as they were run, with the paths of that day; here with one path per stage):

    python -m spot.toy.pretrain --out /tmp/s1 --steps 800 --prior-tasks reverse,sort,count
    python -m spot.toy.pretrain --out /tmp/s2 --init /tmp/s1 --steps 400 --lr 1.5e-3
    python -m spot.toy.pretrain --out /tmp/s3 --init /tmp/s2 --steps 500 --lr 1e-3
    python -m spot.toy.pretrain --out assets/toy-base --init /tmp/s3 --steps 150 --lr 1e-3 --prior-fraction 0.7

The first taught the house style and some arithmetic but not the letter-copying prior tasks, so the later ones
use the easier prior tasks of PRIOR_TASKS; the last weighs the prior tasks more (70% of each batch), so that the
base is good on them (greedy: facts 100%, next number 100%, first letter 83%) while it still gets about a third of
the in-domain chains wrong (68.4% correct). A single run with the default prior tasks is the simpler recipe for
a new base.

Pretraining is deliberately short: the base must stay imperfect on arithmetic chains (so that it makes
hundreds of errors for the Oracle to rectify) while it masters the easy prior tasks.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch

from spot.chat import ChatFormat
from spot.data import encode
from spot.logps import padded_batch, sequence_logps
from spot.toy.model import build_model, build_tokenizer
from spot.toy.tasks import IN_DOMAIN, PRIOR_TASKS, Difficulty, make_prior, make_problem, slipped_solution

# Pretraining chains are 1-4 steps: the in-domain length, never the OOD one.
PRETRAIN_LEVEL = Difficulty(min_steps=1, max_steps=IN_DOMAIN.max_steps, max_value=IN_DOMAIN.max_value,
                            max_operand=IN_DOMAIN.max_operand)


def sample_example(rng: random.Random, prior_fraction: float, prior_tasks=PRIOR_TASKS,
                   slip_fraction: float = 0.0) -> tuple[str, str]:
    """One pretraining example. With `slip_fraction` > 0 that share of the arithmetic solutions carries one slip
    (spot.toy.tasks.slipped_solution): a quarter of them sign slips on an add verb, a quarter on a sub verb, half
    wrong results. At 0 the stream is draw for draw the one the shipped base was built from."""
    if rng.random() < prior_fraction:
        return make_prior(rng, rng.choice(prior_tasks))
    if slip_fraction and rng.random() < slip_fraction:
        slip = rng.choice(("sign+", "sign-", "result", "result"))
        while True:
            p = make_problem(rng, PRETRAIN_LEVEL)
            if (text := slipped_solution(p, slip, rng)) is not None:
                return p.text, text
    p = make_problem(rng, PRETRAIN_LEVEL)
    return p.text, p.solution()


def pretrain(out: str, steps: int, batch_size: int, lr: float, prior_fraction: float, seed: int,
             init: str | None = None, prior_tasks: tuple[str, ...] = PRIOR_TASKS, slip_fraction: float = 0.0,
             size: dict | None = None) -> dict:
    """Trains (or continues) a toy base. `size` holds build_model's shape arguments (hidden_size, num_layers,
    num_heads, num_kv_heads, intermediate_size) for a fresh model; a continued one keeps its shape."""
    torch.manual_seed(seed)
    # the data stream depends on the init path too, so that a continued run does not replay stage 1's data
    rng = random.Random(f"spot-toy/pretrain/{seed}" + (f"/{init}" if init else ""))
    tokenizer = build_tokenizer()
    chat = ChatFormat(tokenizer)
    if init:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(init)
    else:
        model = build_model(tokenizer, seed=seed, **(size or {}))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)
    # warm-up over 5% of the steps, at least two (OneCycleLR divides by the warm-up length minus one)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=max(0.05, 2.5 / steps))
    model.train()
    t0, losses = time.time(), []
    for step in range(1, steps + 1):
        batch = padded_batch([encode(chat, *sample_example(rng, prior_fraction, prior_tasks, slip_fraction), 320, 256)
                         for _ in range(batch_size)], tokenizer.pad_token_id)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logp, n = sequence_logps(model, **batch)
        loss = -(logp.sum() / n.sum())  # mean NLL per completion token
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps:
            print(f"step {step}/{steps} loss {sum(losses[-100:]) / len(losses[-100:]):.4f} "
                  f"{time.time() - t0:.0f}s", flush=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    stage = {"steps": steps, "batch_size": batch_size, "lr": lr, "prior_fraction": prior_fraction,
             "prior_tasks": list(prior_tasks), "seed": seed, "init": init, "slip_fraction": slip_fraction,
             "size": size or {}, "parameters": sum(p.numel() for p in model.parameters()),
             "final_loss": sum(losses[-100:]) / len(losses[-100:]), "seconds": round(time.time() - t0, 1),
             "command": f"python -m spot.toy.pretrain --out {out} --steps {steps} --batch-size {batch_size} "
                        f"--lr {lr} --prior-fraction {prior_fraction} --seed {seed} "
                        f"--prior-tasks {','.join(prior_tasks)}" + (f" --init {init}" if init else "")
                        + (f" --slip-fraction {slip_fraction}" if slip_fraction else "")
                        + "".join(f" --{k.replace('_', '-')} {v}" for k, v in (size or {}).items())}
    history = []
    if init and Path(init, "pretrain.json").exists():
        history = json.loads(Path(init, "pretrain.json").read_text())["stages"]
    info = {"stages": history + [stage]}
    with open(f"{out}/pretrain.json", "w") as f:
        json.dump(info, f, indent=2)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="assets/toy-base")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--prior-fraction", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="continue from this saved model instead of a fresh one")
    ap.add_argument("--prior-tasks", default=",".join(PRIOR_TASKS), help="comma-separated, see toy/tasks.py")
    ap.add_argument("--slip-fraction", type=float, default=0.0,
                    help="share of arithmetic solutions with one slip (the slips world of experiments/study)")
    for name in ("hidden-size", "num-layers", "num-heads", "num-kv-heads", "intermediate-size"):
        ap.add_argument(f"--{name}", type=int, default=None, help="model shape of a fresh model (toy/model.py)")
    a = ap.parse_args()
    if not 0.0 <= a.slip_fraction <= 1.0:
        ap.error(f"--slip-fraction {a.slip_fraction}: a share, between 0 and 1")
    size = {k: getattr(a, k) for k in ("hidden_size", "num_layers", "num_heads", "num_kv_heads",
                                       "intermediate_size") if getattr(a, k) is not None}
    if size and a.init:
        ap.error("--init continues a saved model, whose shape is fixed: drop the shape flags")
    print(pretrain(a.out, a.steps, a.batch_size, a.lr, a.prior_fraction, a.seed, a.init,
                   tuple(a.prior_tasks.split(",")), a.slip_fraction, size))


if __name__ == "__main__":
    main()
