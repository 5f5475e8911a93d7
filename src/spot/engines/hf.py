"""transformers' generate in this process, with static left-padded batches: the embedded default
(generation=hf). It scores a model where it is (in memory, on its device), so train.py can score the policy it
is training without writing it to disk."""

from __future__ import annotations

import torch

from spot.engines.base import Arrived, TokenRate


class _Beat:
    """A transformers streamer that only counts: generate() calls `put` with the prompts, then once per new
    position; each position adds a token per row still generating (rows that ended are counted too: an upper
    bound until the batch ends and its real count replaces it)."""

    def __init__(self, bar: TokenRate, rows: int):
        self.bar, self.rows, self.prompts_seen = bar, rows, False

    def put(self, value) -> None:
        if self.prompts_seen:
            self.bar.beat(self.rows)
        self.prompts_seen = True

    def end(self) -> None:
        pass


class HFEngine:
    name = "hf"
    loads_from_disk = False
    transport_options = ()

    @classmethod
    def from_weights(cls, weights, tokenizer) -> HFEngine:
        return cls(weights.loaded(), tokenizer)  # in memory: a policy in training is scored without a save

    def __init__(self, model: torch.nn.Module, tokenizer):
        """`model`: a loaded causal LM, scored where it is (its device, its dtype); loading is the caller's, who
        knows the dtype and device it wants (spot.engines.base.Weights)."""
        self.model, self.tokenizer = model, tokenizer

    @torch.no_grad()
    def complete(self, prompts: list[list[int]], sampling, seed: int = 0, progress: bool = True,
                 desc: str = "generate", positions: list[int] | None = None,
                 on_done: Arrived | None = None) -> list[str]:
        """Prompts are sorted by length before batching, so that a batch wastes little on padding. One seed
        serves the whole call (transformers' generate has no per-row generator), so `positions` change nothing:
        sampled completions depend on how the prompts were batched, and a resumed call's are new samples."""
        model, tok = self.model, self.tokenizer
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        was_training = model.training
        model.eval()
        torch.manual_seed(seed)
        device = next(model.parameters()).device
        greedy = sampling.greedy
        bar = TokenRate(len(prompts), desc, progress)
        for start in range(0, len(order), sampling.batch_size):
            idx = order[start : start + sampling.batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):  # left padding: the prompts end where generation starts
                ids[row, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[row, width - len(prompts[i]) :] = 1
            new = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=sampling.max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None if greedy else (sampling.top_k or None),
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
                streamer=_Beat(bar, len(idx)) if progress else None,
            )[:, width:]
            for row, i in enumerate(idx):
                out[i] = tok.decode(new[row], skip_special_tokens=True)
            bar.update(len(idx), int((new != tok.pad_token_id).sum()))
            if on_done is not None:
                on_done(idx, [out[i] for i in idx])
        bar.close()
        model.train(was_training)
        return out

    def close(self) -> None:
        self.model = None
