"""How far the trained policy drifted from the reference: KL(pi || pi_ref) on held-out prompts.

The estimate samples y ~ pi(.|x) and averages log pi(y|x) - log pi_ref(y|x) over the samples, which is
unbiased for KL(pi || pi_ref) only when y comes from pi itself: pure sampling at temperature 1 with no top-p or
top-k truncation (the log-probs are those of the untempered model). Reported per sequence (the mean of the
summed log-ratio) and per token (the summed log-ratio over the summed completion length).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spot.chat import ChatFormat
from spot.engines.hf import HFEngine
from spot.errors import check, check_type
from spot.generation import Sampling, generate
from spot.logps import padded_batch, sequence_logps


@dataclass(frozen=True)
class KLSettings:
    n_prompts: int = 64  # held-out prompts, one sample each
    max_new_tokens: int = 256
    batch_size: int = 32

    def __post_init__(self) -> None:
        for name, least in (("n_prompts", 0), ("max_new_tokens", 1), ("batch_size", 1)):
            value = getattr(self, name)
            check_type(value, int, f"kl.{name}")
            check(value >= least, f"kl.{name}", f"must be >= {least}, got {value!r}")

    def sampling(self) -> Sampling:
        return Sampling(max_new_tokens=self.max_new_tokens, temperature=1.0, top_p=1.0, top_k=0,
                        batch_size=self.batch_size)


def spread_prompts(prompt_lists: list[list[str]], n: int) -> list[str]:
    """Up to n prompts taken round-robin from several suites, so every suite is represented."""
    out, k = [], 0
    while len(out) < n and any(k < len(p) for p in prompt_lists):
        out += [p[k] for p in prompt_lists if k < len(p)][: n - len(out)]
        k += 1
    return out


def sampled_sequences(chat: ChatFormat, prompts: list[str], completions: list[str], max_new_tokens: int
                      ) -> list[tuple[list[int], int]]:
    """(prompt + completion ids, prompt length) per sample. Completions come back as text, so they are
    re-tokenized; one shorter than the budget stopped at the end-of-sequence token, which is then part of
    what was sampled. (Exact for character tokenizers; BPE re-tokenization can rarely differ.)"""
    out = []
    for prompt, completion in zip(prompts, completions):
        p = chat.prompt_ids(prompt)
        c = chat.tokenizer(completion, add_special_tokens=False)["input_ids"]
        if len(c) < max_new_tokens:
            c = c + [chat.tokenizer.eos_token_id]
        out.append((p + c, len(p)))
    return out


def on_device(batch: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items()}


@torch.no_grad()
def kl_to_reference(policy, reference, chat: ChatFormat, prompts: list[str], settings: KLSettings = KLSettings(),
                    seed: int = 0, progress: bool = False) -> dict[str, float]:
    """{"sequence", "token", "n_samples", "mean_tokens"}: the KL estimate on one policy sample per prompt."""
    prompts = prompts[: settings.n_prompts]
    if not prompts:
        return {}
    # the policy's own samples, from memory: the log-probs below need it there anyway
    completions = generate(HFEngine(policy, chat.tokenizer), chat, prompts, settings.sampling(), seed=seed,
                           progress=progress, desc="kl samples")
    seqs = sampled_sequences(chat, prompts, completions, settings.max_new_tokens)
    was_training = (policy.training, reference.training)
    policy.eval(), reference.eval()
    diffs, tokens = [], []
    for s in range(0, len(seqs), settings.batch_size):
        chunk = seqs[s : s + settings.batch_size]
        batch = padded_batch(chunk, chat.tokenizer.pad_token_id)
        lp, n_tok = sequence_logps(policy, **on_device(batch, policy))
        lr, _ = sequence_logps(reference, **on_device(batch, reference))
        diffs.append((lp - lr.to(lp.device)).double().cpu())  # (b,) summed log-ratio per sample
        tokens.append(n_tok.double().cpu())
    policy.train(was_training[0]), reference.train(was_training[1])
    diff, n = torch.cat(diffs), torch.cat(tokens)
    return {"sequence": float(diff.mean()), "token": float(diff.sum() / n.sum().clamp(min=1)),
            "n_samples": len(seqs), "mean_tokens": float(n.mean())}
