"""The edit ratio R_LCS = 1 - |LCS(y-, y+)| / |y+| over token ids (docs/METHOD.md, "Data pipeline").

R_LCS is 0 when y+ is a subsequence of y- (nothing was written anew) and 1 when they share no token. The
paper keeps a pair when R_LCS <= gamma = 0.6, so that y+ stays close to the policy's own distribution.
"""

from __future__ import annotations

from collections.abc import Sequence


def lcs_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyro 2004): O(|a| * |b| / 64) word ops.

    Each bit of `v` stands for a position of `b`; after every token of `a` the zero bits of `v` count the
    LCS so far. Python's big integers make this one loop over `a`, fast for sequences of thousands of tokens.
    """
    if not a or not b:
        return 0
    masks: dict[int, int] = {}
    for i, token in enumerate(b):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(b)) - 1
    v = full
    for token in a:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(b) - v.bit_count()


def edit_ratio(rejected: Sequence[int], chosen: Sequence[int]) -> float:
    """R_LCS of y+ (`chosen`) against y- (`rejected`); 1.0 for an empty y+."""
    if not chosen:
        return 1.0
    return 1.0 - lcs_length(rejected, chosen) / len(chosen)
