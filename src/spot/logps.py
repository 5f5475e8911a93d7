"""Per-sequence log-probabilities of completion tokens.

The log-prob of a label is its logit minus the logsumexp of the row: no full-vocabulary log-softmax tensor is
built, and the work is done in chunks of positions so that a real 150k vocabulary does not hold a second
(B, T, V) float32 tensor at once.

For Hugging Face causal LMs with a plain linear head (Qwen, Llama, Mistral...), `sequence_logps` goes further:
it runs the decoder alone, keeps the hidden states of the positions that predict a completion token, and applies
the LM head only there, in chunks, through `label_logps`, whose backward recomputes each chunk's logits instead
of storing them. No (B, T, V) logits exist at any time, and prompt and padding positions never reach the head.

Batches come in three layouts (spot.speed.layout, chosen by speed.layout), all scored the same way, through a
list of targets: `score_from` (flat index of the position whose hidden state predicts the token), `score_label`
(the token) and `score_seq` (which sequence the token belongs to). A padded batch (rows = sequences,
`loss_mask`) gets the list derived from its mask.
"""

from __future__ import annotations

import torch

from spot.speed.attention import use_segment_attention


def padded_batch(seqs: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """(ids, prompt length) per sequence -> the right-padded batch `sequence_logps` scores: one helper for
    training batches, the reference cache and the KL estimate. loss_mask marks completion tokens; right padding
    keeps each row's positions those of its unpadded text."""
    width = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    loss_mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for row, (ids, n_prompt) in enumerate(seqs):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
        loss_mask[row, n_prompt : len(ids)] = True
    return {"input_ids": input_ids, "attention_mask": attention_mask, "loss_mask": loss_mask}


def token_logps(logits: torch.Tensor, labels: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """log p(label) for every position. logits (N, T, V), labels (N, T) -> (N, T), float32."""
    out = torch.empty(labels.shape, dtype=torch.float32, device=logits.device)
    for s in range(0, labels.shape[1], chunk):
        part = logits[:, s : s + chunk].float()  # (N, t, V)
        picked = part.gather(-1, labels[:, s : s + chunk, None]).squeeze(-1)
        out[:, s : s + chunk] = picked - part.logsumexp(-1)
    return out


def sequence_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                   loss_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                   score_from: torch.Tensor | None = None, score_label: torch.Tensor | None = None,
                   score_seq: torch.Tensor | None = None, num_sequences: int | None = None,
                   segments: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion-token log-probs, number of completion tokens), each (N,), N = number of sequences.

    Padded batch: rows are sequences and `loss_mask` marks completion tokens; position t predicts token t+1, so
    the scored positions are those whose *next* token is masked in. Packed or prefix-shared batch (rows hold
    several sequences): `score_from/score_label/score_seq` list the targets, `num_sequences` counts them and
    `segments` says where each unit sits, for spot.speed.attention.
    """
    if hasattr(model, "get_base_model"):  # a peft model: the transformers model inside, adapters in place
        model = model.get_base_model()
    if score_from is None:
        score_from, score_label, score_seq = targets_from_mask(input_ids, loss_mask)
        num_sequences = input_ids.shape[0]
    head, extra = _linear_head(model), {}
    if segments is not None:  # packed rows: attended unit by unit, no dense mask
        use_segment_attention(model)
        # a 4D mask is taken as ready-made, so transformers builds none; segment attention ignores it
        attention_mask = input_ids.new_ones((input_ids.shape[0], 1, 1, 1), dtype=torch.bool)
        extra["spot_segments"] = [tuple(s) for s in segments.tolist()]
    if head is None:  # a model we cannot split into decoder + linear head: full logits, then pick
        logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                       **extra).logits
        picked = logits.flatten(0, 1)[score_from]  # (n, V)
        per_token = token_logps(picked[None], score_label[None])[0]
    else:
        hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                                  use_cache=False, **extra).last_hidden_state  # (R, T, H)
        per_token = label_logps(hidden.flatten(0, 1)[score_from], head, score_label)  # (n,)
    sums = per_token.new_zeros(num_sequences).index_add(0, score_seq, per_token)
    counts = torch.bincount(score_seq, minlength=num_sequences)
    return sums, counts


def targets_from_mask(input_ids: torch.Tensor, loss_mask: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(score_from, score_label, score_seq) of a padded batch: position t scores token t+1 where it is masked in."""
    rows, width = input_ids.shape
    scored = torch.zeros_like(loss_mask, dtype=torch.bool)
    scored[:, :-1] = loss_mask[:, 1:].bool()  # (R, T): this position's next token is a completion token
    flat = scored.flatten().nonzero().squeeze(-1)  # (n,)
    return flat, input_ids.flatten()[flat + 1], flat // width


def _linear_head(model) -> torch.nn.Linear | None:
    """The LM head when logits are exactly `lm_head(decoder(x))`, else None (then the full forward is used).

    Models that scale or soft-cap their logits (Gemma 2, Granite, Cohere...) do more than the linear head, so
    they take the slow path rather than a silently different one.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    if not isinstance(head, torch.nn.Linear) or config is None or getattr(model, "base_model", model) is model:
        return None
    if any(getattr(config, k, None) not in (None, 1.0) for k in
           ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier")):
        return None
    return head


def label_logps(hidden: torch.Tensor, head: torch.nn.Linear, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(head(hidden))[label] for each row: hidden (n, H), labels (n,) -> (n,) float32.

    Under DeepSpeed ZeRO-3 the head's weight is a partitioned placeholder that only the module's own forward
    gathers, so there the head is called as a module (chunked, plain autograd) instead of through the fused path.
    """
    if hasattr(head.weight, "ds_id"):
        return torch.cat([token_logps(head(h)[None], y[None])[0]
                          for h, y in zip(hidden.split(_chunk_rows(head)), labels.split(_chunk_rows(head)))])
    return _LabelLogps.apply(hidden, head.weight, head.bias, labels, _chunk_rows(head))


def _chunk_rows(head: torch.nn.Linear, budget: int = 2**25) -> int:
    """Rows per chunk so that one chunk's float32 logits stay near `budget` elements (128 MB)."""
    return max(1, budget // head.out_features)


class _LabelLogps(torch.autograd.Function):
    """Label log-probs through a linear head, chunk by chunk, never holding more than one chunk's logits.

    Forward keeps only each row's logsumexp. Backward recomputes the chunk's logits z and uses
    d log p(y) / dz = onehot(y) - softmax(z), scaled by the incoming gradient g of each row:
        dz = g * (onehot(y) - exp(z - lse)),   d hidden = dz @ W,   d W = dz^T @ hidden,   d b = sum(dz).
    The matmuls run in the weight's dtype (or autocast's); softmax and accumulation run in float32.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, labels, chunk):
        dtype = _compute_dtype(hidden, weight)
        out = torch.empty(labels.shape, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(out)
        for s in range(0, labels.shape[0], chunk):
            z = _logits(hidden[s : s + chunk], weight, bias, dtype)  # (c, V) float32
            lse[s : s + chunk] = z.logsumexp(-1)
            out[s : s + chunk] = z.gather(-1, labels[s : s + chunk, None]).squeeze(-1) - lse[s : s + chunk]
        ctx.save_for_backward(hidden, weight, bias, labels, lse)
        ctx.chunk, ctx.dtype = chunk, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, labels, lse = ctx.saved_tensors
        chunk, dtype = ctx.chunk, ctx.dtype
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros_like(hidden, dtype=torch.float32) if need_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if need_w else None
        grad_b = torch.zeros_like(bias, dtype=torch.float32) if need_b else None
        for s in range(0, labels.shape[0], chunk):
            h, g = hidden[s : s + chunk].to(dtype), grad_out[s : s + chunk].float()[:, None]  # (c, H), (c, 1)
            dz = _logits(h, weight, bias, dtype).sub_(lse[s : s + chunk, None]).exp_().mul_(-g)  # -g * softmax
            dz.scatter_add_(-1, labels[s : s + chunk, None], g)  # + g * onehot
            dz = dz.to(dtype)
            if need_h:
                grad_h[s : s + chunk] = dz @ weight.to(dtype)
            if need_w and dtype == torch.float32:
                grad_w.addmm_(dz.t(), h)
            elif need_w:
                grad_w += (dz.t() @ h).float()
            if need_b:
                grad_b += dz.float().sum(0)
        cast = lambda grad, like: None if grad is None else grad.to(like.dtype)
        return cast(grad_h, hidden), cast(grad_w, weight), cast(grad_b, bias), None, None


def _compute_dtype(hidden: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    device = hidden.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else weight.dtype


def _logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype
            ) -> torch.Tensor:
    """hidden @ W^T (+ b) in `dtype`, returned as float32 (c, V)."""
    z = hidden.to(dtype) @ weight.to(dtype).t()
    if bias is not None:
        z = z + bias.to(dtype)
    return z.float()
