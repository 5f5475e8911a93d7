"""Batch layouts with less padding: sequences packed into rows, and pairs that share their common prefix.

`speed.layout` picks one (conf/train.yaml; spot.data.PairDataModule):
    padded   one sequence a row, right-padded to the longest (spot.logps.padded_batch); every attention kernel
    packed   sequences laid end to end in rows (first-fit decreasing, rows as wide as the longest sequence),
             position ids restarting at 0 for each. Padding left: only the tail of each row.
    shared   packed, and the chosen and rejected answers of a pair share one copy of their longest common
             prefix (the prompt, and for rectified pairs the reasoning up to the first edited step). The two tails
             both continue from the prefix: their position ids restart where it ends, and the rejected tail
             sees the prefix and itself but not the chosen tail. Same log-probs as two separate rows (up to
             float summation order) for fewer tokens.

Both pass a segment table, `segments` (row, start, trunk, tail1, tail2) per unit, and are attended unit by unit
(spot.speed.attention): no dense mask, no attention work across units or on padding.
Every layout is scored through a list of targets (spot.logps.sequence_logps): `score_from` (the flat index
of the position whose hidden state predicts the token), `score_label` and `score_seq` (its sequence, in the
padded batch's order: B chosen, then B rejected).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

LAYOUTS = ("padded", "packed", "shared")


@dataclass
class Unit:
    """Tokens laid out contiguously in one row: a sequence, or a pair's shared prefix and its two tails."""

    shape: tuple[int, int, int]  # (trunk, tail1, tail2): tail2 attends to the trunk and itself only
    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    targets: list[tuple[int, int, int]] = field(default_factory=list)  # (predictor offset, label, sequence)


def sequence_unit(ids: list[int], n_prompt: int, seq: int) -> Unit:
    """One sequence alone; token t (a completion token) is predicted from offset t - 1."""
    targets = [(t - 1, ids[t], seq) for t in range(max(n_prompt, 1), len(ids))]
    return Unit((len(ids), 0, 0), list(ids), list(range(len(ids))), targets)


def pair_unit(chosen: tuple[list[int], int], rejected: tuple[list[int], int], seq_c: int, seq_r: int) -> Unit:
    """Shared prefix, then the chosen tail, then the rejected tail (both positioned right after the prefix)."""
    (c, np_c), (r, np_r) = chosen, rejected
    s = 0
    while s < min(len(c), len(r)) and c[s] == r[s]:
        s += 1
    unit = Unit((s, len(c) - s, len(r) - s), c + r[s:], list(range(len(c))) + list(range(s, len(r))))
    at_r = lambda t: t if t < s else len(c) + t - s  # where rejected token t sits in the unit
    unit.targets = [(t - 1, c[t], seq_c) for t in range(max(np_c, 1), len(c))]
    unit.targets += [(at_r(t - 1), r[t], seq_r) for t in range(max(np_r, 1), len(r))]
    return unit


def first_fit_rows(lengths: list[int], width: int) -> list[list[int]]:
    """Unit indices per row: longest first, each into the first row with room (first-fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = next((k for k, free in enumerate(room) if free >= lengths[i]), None)
        if slot is None:
            rows.append([])
            room.append(width)
            slot = len(rows) - 1
        rows[slot].append(i)
        room[slot] -= lengths[i]
    return rows


def layout_batch(examples: list[list[tuple[list[int], int]]], pad_id: int, layout: str) -> dict:
    """A packed or shared batch of examples (each [chosen] or [chosen, rejected], as (ids, prompt length))."""
    n, k = len(examples), len(examples[0])
    if layout == "shared" and k == 2:
        units = [pair_unit(ex[0], ex[1], i, n + i) for i, ex in enumerate(examples)]
    else:  # single completions have nothing to share: "shared" packs them like "packed"
        units = [sequence_unit(*ex[j], j * n + i) for j in range(k) for i, ex in enumerate(examples)]
    width = max(len(u.ids) for u in units)
    rows = first_fit_rows([len(u.ids) for u in units], width)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    targets, segments = [], []
    for r, row in enumerate(rows):
        col = 0
        for u in row:
            unit, end = units[u], col + len(units[u].ids)
            input_ids[r, col:end] = torch.tensor(unit.ids)
            position_ids[r, col:end] = torch.tensor(unit.positions)
            segments.append((r, col, *unit.shape))
            targets += [(r * width + col + offset, label, seq) for offset, label, seq in unit.targets]
            col = end
        position_ids[r, col:] = torch.arange(width - col)  # the padded tail is a sequence of its own
    targets.sort(key=lambda t: t[0])
    score = torch.tensor(targets, dtype=torch.long).t()  # (3, n)
    return {"input_ids": input_ids, "attention_mask": None, "position_ids": position_ids,
            "segments": torch.tensor(segments, dtype=torch.long), "score_from": score[0], "score_label": score[1],
            "score_seq": score[2], "num_sequences": n * k}
