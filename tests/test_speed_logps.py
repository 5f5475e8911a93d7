"""The completion-only LM head: same log-probs and gradients as a full log-softmax, without (B, T, V) logits."""

import torch

from spot.logps import _LabelLogps, label_logps, sequence_logps, targets_from_mask


def test_label_logps_matches_log_softmax_values_and_gradients_in_any_chunking():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(7, 5, generator=g, requires_grad=True)
    head = torch.nn.Linear(5, 11)
    labels = torch.randint(0, 11, (7,), generator=g)
    upstream = torch.randn(7, generator=g)  # a different gradient per row, as a sequence loss gives
    expected = head(hidden).log_softmax(-1).gather(-1, labels[:, None]).squeeze(-1)
    want = torch.autograd.grad((expected * upstream).sum(), (hidden, head.weight, head.bias))
    for chunk in (1, 3, 7):
        got = _LabelLogps.apply(hidden, head.weight, head.bias, labels, chunk)
        assert torch.allclose(got, expected, atol=1e-6)
        grads = torch.autograd.grad((got * upstream).sum(), (hidden, head.weight, head.bias))
        for a, b in zip(grads, want):
            assert torch.allclose(a, b, atol=1e-6)


def test_label_logps_without_bias_and_frozen_head():
    head = torch.nn.Linear(4, 9, bias=False).requires_grad_(False)
    hidden = torch.randn(3, 4, requires_grad=True)
    labels = torch.tensor([0, 8, 4])
    out = label_logps(hidden, head, labels)
    out.sum().backward()
    expected = torch.log_softmax(hidden @ head.weight.t(), -1).gather(-1, labels[:, None]).squeeze(-1)
    assert torch.allclose(out, expected, atol=1e-6) and hidden.grad is not None


def test_targets_from_mask_score_the_next_token_of_each_masked_position():
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 7, 8, 9]])
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    frm, label, seq = targets_from_mask(ids, mask)
    assert frm.tolist() == [1, 2, 6, 7, 8]  # flat positions: row 0 cols 1, 2; row 1 cols 1, 2, 3
    assert label.tolist() == [7, 8, 7, 8, 9] and seq.tolist() == [0, 0, 1, 1, 1]


def test_decoder_plus_head_path_equals_the_full_logits_path(micro_model_dir):
    """The fast path (decoder, then the head on completion positions) against the model's own logits."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(micro_model_dir)
    ids = torch.tensor([[5, 6, 7, 8, 0], [5, 6, 7, 8, 9]])
    attn = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    total, n = sequence_logps(model, ids, attn, mask)
    total.sum().backward()
    fast = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].log_softmax(-1)
    slow = (logits.gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]).sum(-1)
    slow.sum().backward()
    assert n.tolist() == [2, 3]
    assert torch.allclose(total, slow, atol=1e-5)
    for a, p in zip(fast, model.parameters()):
        assert torch.allclose(a, p.grad, atol=1e-5)
