"""The varlen path of segment attention, run on CPU with the pure-torch reference kernel.

Tested here: the index/cu_seqlens construction, the gather into (total, H, D), the scatter back, GQA and the
two-call split (heads, then rejected tails against trunk ++ tail), outputs and gradients against the per-unit loop;
and that the reference kernel's causal mask is aligned to the bottom right, as flash-attn >= 2.1 documents.
Not tested here: flash-attn's own kernel (it needs CUDA); segment_attention only picks it on CUDA with fp16/bf16.
"""

import torch

from spot.speed.attention import reference_varlen, segment_attention, varlen_segment_attention

# row 0: a pair (trunk 3, tails 2 and 2), a sequence of 4, padding; row 1: a pair with no tail1 (chosen is a prefix
# of rejected), a pair with no common prefix, padding; row 2: one sequence, padding
SEGMENTS = [(0, 0, 3, 2, 2), (0, 7, 4, 0, 0), (1, 0, 5, 0, 3), (1, 8, 0, 2, 3), (2, 0, 10, 0, 0)]


def qkv(heads=4, kv_heads=2, rows=3, width=14, dim=8):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(rows, heads, width, dim, generator=g, dtype=torch.float64)
    k, v = (torch.randn(rows, kv_heads, width, dim, generator=g, dtype=torch.float64) for _ in range(2))
    return [t.requires_grad_() for t in (q, k, v)]


def loop_and_varlen(q, k, v, scaling=None):
    loop, _ = segment_attention(torch.nn.Module(), q, k, v, None, scaling=scaling, spot_segments=SEGMENTS)
    return loop, varlen_segment_attention(q, k, v, SEGMENTS, reference_varlen, scaling=scaling)


def test_varlen_path_equals_the_loop_in_outputs_and_gradients():
    for heads, kv_heads, scaling in ((4, 2, None), (4, 4, 0.3), (4, 1, None)):  # GQA, MHA with a scale, MQA
        q, k, v = qkv(heads, kv_heads)
        loop, varlen = loop_and_varlen(q, k, v, scaling)
        assert varlen.shape == loop.shape == (3, 14, heads, 8)
        assert (varlen - loop).abs().max() < 1e-12
        assert varlen[0, 11:].abs().sum() == varlen[1, 13:].abs().sum() == varlen[2, 10:].abs().sum() == 0
        w = torch.randn(loop.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        want = torch.autograd.grad((loop * w).sum(), (q, k, v))
        got = torch.autograd.grad((varlen * w).sum(), (q, k, v))
        for a, b in zip(got, want):
            assert (a - b).abs().max() < 1e-12


def test_reference_kernel_aligns_the_causal_mask_bottom_right():
    """2 queries over 3 keys: query 0 sees keys 0, 1 (top-left would give key 0 only), query 1 sees all three."""
    v = torch.eye(3, dtype=torch.float64)[:, None]  # (3 keys, 1 head, D=3): the output row is the attention weights
    k = torch.zeros(3, 1, 3, dtype=torch.float64)  # equal scores: uniform over the keys each query sees
    q = torch.zeros(2, 1, 3, dtype=torch.float64)
    cu_q, cu_k = torch.tensor([0, 2], dtype=torch.int32), torch.tensor([0, 3], dtype=torch.int32)
    out = reference_varlen(q, k, v, cu_q, cu_k, 2, 3, True, None, 0.0)[:, 0]
    assert torch.allclose(out, torch.tensor([[0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]], dtype=torch.float64))


def test_kernel_gets_the_lengths_scale_and_dropout():
    calls = []

    def spy(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, dropout):
        calls.append((cu_q.tolist(), cu_k.tolist(), max_q, max_k, causal, scale, dropout))
        return reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, causal, scale, 0.0)

    q, k, v = qkv()
    varlen_segment_attention(q, k, v, SEGMENTS, spy, dropout=0.1, scaling=0.25)
    assert calls == [([0, 5, 9, 14, 16, 26], [0, 5, 9, 14, 16, 26], 10, 10, True, 0.25, 0.1),  # trunk + tail1
                     ([0, 2, 5, 8], [0, 5, 13, 16], 3, 8, True, 0.25, 0.1)]  # tail2 queries, trunk ++ tail2 keys
