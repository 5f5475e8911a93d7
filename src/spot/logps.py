"""Per-sequence log-probabilities of completion tokens.

The log-prob of a label is its logit minus the logsumexp of the row: no full-vocabulary log-softmax tensor is
built, and the work is done in chunks of positions so that a real 150k vocabulary does not hold a second
(B, T, V) float32 tensor at once.
"""

from __future__ import annotations

import torch


def token_logps(logits: torch.Tensor, labels: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """log p(label) for every position. logits (N, T, V), labels (N, T) -> (N, T), float32."""
    out = torch.empty(labels.shape, dtype=torch.float32, device=logits.device)
    for s in range(0, labels.shape[1], chunk):
        part = logits[:, s : s + chunk].float()  # (N, t, V)
        picked = part.gather(-1, labels[:, s : s + chunk, None]).squeeze(-1)
        out[:, s : s + chunk] = picked - part.logsumexp(-1)
    return out


def sequence_logps(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, loss_mask: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of completion-token log-probs, number of completion tokens), each (N,).

    Position t predicts token t+1, so logits drop the last position and masks drop the first.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]  # (N, T-1, V)
    labels = input_ids[:, 1:]
    mask = loss_mask[:, 1:]
    per_token = token_logps(logits, labels) * mask
    return per_token.sum(-1), mask.sum(-1)
