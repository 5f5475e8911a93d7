import torch

from spot.logps import padded_batch, sequence_logps, token_logps


def test_token_logps_matches_log_softmax_and_chunks_agree():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g)
    labels = torch.randint(0, 11, (3, 7), generator=g)
    expected = logits.log_softmax(-1).gather(-1, labels[..., None]).squeeze(-1)
    assert torch.allclose(token_logps(logits, labels), expected, atol=1e-6)
    assert torch.allclose(token_logps(logits, labels, chunk=2), expected, atol=1e-6)


def test_sequence_logps_scores_only_completion_tokens(micro_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(micro_model_dir)
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 7, 8, 9]])
    attn = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    total, n = sequence_logps(model, ids, attn, mask)
    full = model(input_ids=ids, attention_mask=attn).logits.log_softmax(-1)
    by_hand = full[0, 1, 7] + full[0, 2, 8]  # positions 1 and 2 predict tokens 7 and 8
    assert n.tolist() == [2, 3]
    assert torch.allclose(total[0], by_hand, atol=1e-5)


def test_padded_batch_pads_right_and_marks_only_completion_tokens():
    """The one padding helper (training batches, the reference cache, the KL estimate)."""
    batch = padded_batch([([5, 6, 7], 2), ([5, 6, 7, 8, 9], 3)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch["loss_mask"].tolist() == [[False, False, True, False, False], [False, False, False, True, True]]
