import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from llmfs.pretrain.gpt import GPT, GPTConfig
from llmfs.pretrain.positions import apply_rope, rope_cache


def test_from_hf_gives_the_same_logits():
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=101, n_positions=32, n_embd=48, n_layer=2, n_head=4)).eval()
    ours = GPT.from_hf(hf).eval()
    idx = torch.randint(0, 101, (3, 17))
    with torch.no_grad():
        diff = (ours(idx) - hf(idx).logits).abs().max().item()
    assert diff < 1e-4, diff


def test_shapes_and_errors():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8))
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 11)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.zeros(5, dtype=torch.long))


def test_rope_scores_depend_only_on_distance():
    cos, sin = rope_cache(16, 64)
    q, k = torch.randn(1, 1, 1, 16), torch.randn(1, 1, 1, 16)

    def score(m, n):
        qm = apply_rope(q, cos[m:m + 1], sin[m:m + 1])
        kn = apply_rope(k, cos[n:n + 1], sin[n:n + 1])
        return (qm * kn).sum().item()

    assert abs(score(5, 2) - score(40, 37)) < 1e-4
    assert abs(score(5, 2) - score(5, 3)) > 1e-3


@pytest.mark.parametrize("gelu", ["tanh", "exact"])
def test_mlp_uses_the_chosen_gelu(gelu):
    from llmfs.pretrain.gpt import MLP

    mlp = MLP(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, gelu=gelu))
    x = torch.randn(2, 3, 8)
    torch_name = {"tanh": "tanh", "exact": "none"}[gelu]
    ref = mlp.c_proj(torch.nn.GELU(approximate=torch_name)(mlp.c_fc(x)))
    other = mlp.c_proj(torch.nn.GELU(approximate="none" if gelu == "tanh" else "tanh")(mlp.c_fc(x)))
    assert torch.equal(mlp(x), ref) and not torch.equal(mlp(x), other)
