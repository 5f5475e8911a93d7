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
"""

from __future__ import annotations

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
    gqa = query.shape[1] != key.shape[1]
    p = dropout if module.training else 0.0
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
