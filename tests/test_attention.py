import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.pretrain.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention


def test_sdpa_equals_pytorch_with_and_without_causal_mask():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 5)
    out, w = scaled_dot_product_attention(q, k, v)
    assert (out - F.scaled_dot_product_attention(q, k, v)).abs().max() < 1e-5
    assert torch.allclose(w.sum(-1), torch.ones(2, 3, 7))
    out, w = scaled_dot_product_attention(q, k, v, mask=causal_mask(7))
    assert (out - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max() < 1e-5
    assert (w.triu(diagonal=1) == 0).all()  # no weight on the future


def test_cross_attention_shapes_and_boolean_mask_equal_pytorch():
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 4, 3, 8), torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)
    mask = torch.rand(2, 1, 3, 6) > 0.3
    mask[..., 0] = True  # every query keeps one key
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert out.shape == (2, 4, 3, 8) and w.shape == (2, 4, 3, 6)
    assert (out - F.scaled_dot_product_attention(q, k, v, attn_mask=mask)).abs().max() < 1e-5


def test_masks():
    assert causal_mask(3).tolist() == [[True, False, False], [True, True, False], [True, True, True]]
    tokens = torch.tensor([[5, 6, 0], [7, 0, 0]])
    assert padding_mask(tokens, pad_id=0).shape == (2, 1, 1, 3)
    assert padding_mask(tokens, pad_id=0)[:, 0, 0].tolist() == [[True, True, False], [True, False, False]]


def test_padding_does_not_change_the_real_positions():
    torch.manual_seed(2)
    mha = MultiHeadAttention(16, 4).eval()
    x = torch.randn(1, 5, 16)
    padded = torch.cat([x, torch.randn(1, 3, 16)], dim=1)  # 3 padding positions with garbage
    tokens = torch.tensor([[1, 1, 1, 1, 1, 0, 0, 0]])
    y = mha(padded, mask=padding_mask(tokens, pad_id=0))
    assert mha.last_weights.shape == (1, 4, 8, 8) and (mha.last_weights[..., 5:] == 0).all()
    assert (y[:, :5] - mha(x)).abs().max() < 1e-5


@pytest.mark.parametrize("bias", [True, False])
def test_multihead_equals_torch_multiheadattention_with_copied_weights(bias):
    torch.manual_seed(3)
    ref = nn.MultiheadAttention(32, 4, bias=bias, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x, mem = torch.randn(2, 6, 32), torch.randn(2, 9, 32)
    # self-attention with a causal mask (torch: True = blocked, so we pass ~ours)
    y_ref, w_ref = ref(x, x, x, attn_mask=~causal_mask(6), average_attn_weights=False)
    assert (ours(x, mask=causal_mask(6)) - y_ref).abs().max() < 1e-5
    assert (ours.last_weights - w_ref).abs().max() < 1e-6
    # cross-attention with a key padding mask
    tokens = torch.tensor([[1] * 9, [1] * 4 + [0] * 5])
    y_ref, _ = ref(x, mem, mem, key_padding_mask=tokens == 0)
    assert (ours(x, mem, mask=padding_mask(tokens, 0)) - y_ref).abs().max() < 1e-5


def test_gradients_flow_and_bad_sizes_raise():
    mha = MultiHeadAttention(8, 2)
    mha(torch.randn(2, 3, 8, requires_grad=True)).sum().backward()
    assert all(p.grad is not None for p in mha.parameters())
    with pytest.raises(ValueError, match="multiple"):
        MultiHeadAttention(10, 3)
