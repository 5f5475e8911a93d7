"""Segment attention: packed and prefix-shared rows attended segment by segment, never through a dense mask.

A row of the `packed` or `shared` layout (spot.speed.layout) holds several units. A dense (T, T) mask would make
every row cost T^2 attention and rule out the causal kernels; instead each unit is attended on its own:
    sequence unit [S]              causal attention over S                       (the fast is_causal kernel)
    pair unit [P C | R]            causal over P+C (the prefix and the chosen tail), then R's queries over the
                                   keys of P and R, causal within R (a small R x (P+R) mask)
so no work is spent on padding, across units, or between the two tails of a pair. For the numbers on a
5M model: a pair with P = 270, C = R = 310 costs 580^2/2 + 310 x 580 = 0.35M score entries instead of a dense
890^2 = 0.79M.

It is registered with transformers as the attention implementation "spot_segments", which is plain sdpa (with
sdpa's masks) for any call that does not pass the segment table, so generation and evaluation are unchanged.

On a GPU with flash-attn installed and fp16/bf16 tensors, the same units go through two varlen kernel calls
instead of the Python loop (`varlen_segment_attention`): one over every unit's [P C] (causal), one over every pair's
R queries against the keys P ++ R (causal=True with seqlen_q < seqlen_k: flash-attn aligns the mask to the bottom
right since 2.1, so R's queries see all of P and R causally). The kernel is an argument: tests/test_speed_varlen.py
runs this path on CPU with `reference_varlen` (same interface, explicit bottom-right mask) against the loop; the
real flash kernel is not run there.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

NAME = "spot_segments"


def segment_attention(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                      spot_segments: list[tuple[int, int, int, int, int]] | None = None, **kwargs):
    """query (R, H, T, D), key/value (R, H_kv, T, D) -> ((R, T, H, D), None), as transformers expects.

    `spot_segments` rows are (row, start, trunk, tail1, tail2): the unit occupies [start, start + trunk + tail1
    + tail2) of `row`; tail2's queries see the trunk and tail2, never tail1.
    """
    if spot_segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    p = dropout if module.training else 0.0
    if query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) and _flash_varlen() is not None:
        return varlen_segment_attention(query, key, value, spot_segments, flash_varlen, p, scaling), None
    gqa = query.shape[1] != key.shape[1]
    out = torch.zeros_like(query)  # padding positions stay 0: finite, and they feed nothing that is scored
    for row, start, trunk, tail1, tail2 in spot_segments:
        head = slice(start, start + trunk + tail1)
        out[row, :, head] = F.scaled_dot_product_attention(
            query[row, :, head], key[row, :, head], value[row, :, head], is_causal=True, dropout_p=p,
            scale=scaling, enable_gqa=gqa)
        if tail2:
            tail = slice(head.stop, head.stop + tail2)
            keys = torch.cat([key[row, :, start : start + trunk], key[row, :, tail]], dim=1)  # (H_kv, trunk+t2, D)
            values = torch.cat([value[row, :, start : start + trunk], value[row, :, tail]], dim=1)
            see = torch.ones(tail2, trunk + tail2, dtype=torch.bool, device=query.device)
            see[:, trunk:] = torch.ones(tail2, tail2, dtype=torch.bool, device=query.device).tril()
            out[row, :, tail] = F.scaled_dot_product_attention(
                query[row, :, tail], keys, values, attn_mask=see, dropout_p=p, scale=scaling, enable_gqa=gqa)
    return out.transpose(1, 2).contiguous(), None


@functools.cache
def _flash_varlen():
    """flash_attn_varlen_func, or None: not installed, or older than 2.1 (its causal mask was top-left then)."""
    try:
        import flash_attn
        from flash_attn import flash_attn_varlen_func
    except ImportError:
        return None
    major, minor = (int(x) for x in flash_attn.__version__.split(".")[:2])
    return flash_attn_varlen_func if (major, minor) >= (2, 1) else None


def flash_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, dropout):
    """flash-attn's varlen kernel: q (total_q, H, D), k/v (total_k, H_kv, D) -> (total_q, H, D)."""
    return _flash_varlen()(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p=dropout, softmax_scale=scale, causal=causal)


def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, dropout):
    """Pure torch stand-in for `flash_varlen`: sequence by sequence, causal aligned to the bottom right (query i
    of sq sees key j of sk when j <= i + sk - sq), as flash-attn >= 2.1 does. Not sdpa's is_causal (top left)."""
    out, cu_q, cu_k = [], cu_q.tolist(), cu_k.tolist()
    for i in range(len(cu_q) - 1):
        qs, ks = slice(cu_q[i], cu_q[i + 1]), slice(cu_k[i], cu_k[i + 1])
        sq, sk = qs.stop - qs.start, ks.stop - ks.start
        see = None
        if causal:
            see = torch.arange(sk, device=q.device)[None] <= torch.arange(sq, device=q.device)[:, None] + sk - sq
        out.append(F.scaled_dot_product_attention(
            q[qs].transpose(0, 1), k[ks].transpose(0, 1), v[ks].transpose(0, 1), attn_mask=see, dropout_p=dropout,
            scale=scale, enable_gqa=q.shape[1] != k.shape[1]).transpose(0, 1))
    return torch.cat(out)


def _ranges(starts: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat indices [s, s + n) for each (s, n), concatenated, and their cu_seqlens (int32)."""
    cu = F.pad(lengths.cumsum(0), (1, 0))
    flat = torch.arange(int(cu[-1])) + (starts - cu[:-1]).repeat_interleave(lengths)
    return flat, cu.to(torch.int32)


def varlen_segment_attention(query, key, value, spot_segments, varlen_attention, dropout: float = 0.0,
                             scaling: float | None = None) -> torch.Tensor:
    """`segment_attention` through two calls of a varlen kernel; (R, T, H, D) out, padding 0.

    `varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, dropout)` as `flash_varlen`."""
    R, H, T, D = query.shape
    seg = torch.tensor(spot_segments, dtype=torch.long).reshape(-1, 5)  # index tensors built on the CPU, moved once
    base, trunk, tail1, tail2 = seg[:, 0] * T + seg[:, 1], seg[:, 2], seg[:, 3], seg[:, 4]
    head = trunk + tail1 > 0
    h_idx, cu_h = _ranges(base[head], (trunk + tail1)[head])
    pair = tail2 > 0
    t_start = (base + trunk + tail1)[pair]
    q_idx, cu_q = _ranges(t_start, tail2[pair])
    k_idx, _ = _ranges(torch.stack([base[pair], t_start], 1).flatten(),  # per pair: trunk, then tail2
                       torch.stack([trunk[pair], tail2[pair]], 1).flatten())
    cu_k = F.pad((trunk + tail2)[pair].cumsum(0), (1, 0)).to(torch.int32)
    h_idx, q_idx, k_idx, cu_h, cu_q, cu_k = (t.to(query.device) for t in (h_idx, q_idx, k_idx, cu_h, cu_q, cu_k))
    take = lambda x, idx: x[idx // T, :, idx % T]  # (R, H, T, D) at flat positions -> (n, H, D), no full copy
    max_h = int((trunk + tail1).max())
    out = query.new_zeros(R * T, H, D).index_copy(0, h_idx, varlen_attention(
        take(query, h_idx), take(key, h_idx), take(value, h_idx), cu_h, cu_h, max_h, max_h, True, scaling, dropout))
    if len(q_idx):
        out = out.index_copy(0, q_idx, varlen_attention(
            take(query, q_idx), take(key, k_idx), take(value, k_idx), cu_q, cu_k, int(tail2.max()),
            int((trunk + tail2)[pair].max()), True, scaling, dropout))
    return out.view(R, T, H, D)


def use_segment_attention(model) -> None:
    """Selects segment attention on `model` (registering it once). It stays selected: with gradient
    checkpointing, the backward re-runs the attention after the forward has returned."""
    if getattr(model.config, "_attn_implementation", None) == NAME:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, segment_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)  # calls without segments get sdpa's own masks
    model.set_attn_implementation(NAME)
