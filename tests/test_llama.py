import pytest
import torch
import transformers
from transformers.models.llama import modeling_llama as hf

from llmfs.pretrain.llama import GroupedQueryAttention, Llama, LlamaConfig, RMSNorm, SwiGLU, repeat_kv
from llmfs.pretrain.positions import rope_cache


@pytest.fixture(scope="module")
def hf_model():
    """A small random Llama with GQA (4 query heads, 2 kv heads), tied embeddings, rope_theta 1e5."""
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=101, hidden_size=32, intermediate_size=72, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():  # HF initialises the norms to ones: make them random to test them
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def test_from_hf_gives_the_same_logits(hf_model):
    ours = Llama.from_hf(hf_model).eval()
    assert ours.config.rope_theta == 100000.0 and ours.config.n_kv_head == 2
    assert ours.lm_head.weight is ours.embed_tokens.weight
    assert ours.num_params() == sum(p.numel() for p in hf_model.parameters())
    idx = torch.randint(0, 101, (3, 17))
    with torch.no_grad():
        diff = (ours(idx) - hf_model(idx).logits).abs().max().item()
    assert diff < 1e-5, diff


def test_rmsnorm_equals_hf():
    ref = hf.LlamaRMSNorm(32, eps=1e-5)
    torch.nn.init.uniform_(ref.weight)
    ours = RMSNorm(32, eps=1e-5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 32) * 3
    assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_swiglu_equals_hf_mlp(hf_model):
    ref = hf_model.model.layers[0].mlp
    ours = SwiGLU(32, 72)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 5, 32)
    assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_repeat_kv_equals_hf():
    x = torch.randn(2, 3, 5, 8)
    assert torch.equal(repeat_kv(x, 4), hf.repeat_kv(x, 4))
    assert torch.equal(repeat_kv(x, 4)[:, 5], x[:, 1])  # query head 5 reads kv head 5 // 4 = 1


def test_attention_equals_hf(hf_model):
    ref = hf_model.model.layers[1].self_attn
    ours = GroupedQueryAttention(LlamaConfig.from_hf(hf_model.config))
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 9, 32)
    cos, sin = rope_cache(8, 9, theta=100000.0)
    hf_cos, hf_sin = hf_model.model.rotary_emb(x, torch.arange(9)[None])
    assert torch.allclose(cos, hf_cos[0], atol=1e-6) and torch.allclose(sin, hf_sin[0], atol=1e-6)
    with torch.no_grad():
        expected, _ = ref(x, position_embeddings=(hf_cos, hf_sin), attention_mask=None)
        assert torch.allclose(ours(x, cos, sin), expected, atol=1e-6)


def test_shapes_and_errors():
    model = Llama(LlamaConfig(vocab_size=11, block_size=8, n_layer=1, n_head=4, n_kv_head=1, n_embd=16,
                              hidden_dim=24, tie_embeddings=False))
    assert model.lm_head.weight is not model.embed_tokens.weight
    assert model(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 11)
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="batch, time"):
        model(torch.zeros(5, dtype=torch.long))


def test_causal_the_past_ignores_the_future(hf_model):
    model = Llama.from_hf(hf_model).eval()
    idx = torch.randint(0, 101, (1, 12))
    changed = idx.clone()
    changed[0, 8:] = (changed[0, 8:] + 1) % 101
    with torch.no_grad():
        assert torch.allclose(model(idx)[0, :8], model(changed)[0, :8], atol=1e-6)


def test_config_from_hf_refuses_what_it_cannot_copy(hf_model):
    cfg = LlamaConfig.from_hf(hf_model.config)
    assert (cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.n_embd, cfg.hidden_dim) == (2, 4, 2, 32, 72)
    biased = transformers.LlamaConfig(**{**hf_model.config.to_dict(), "attention_bias": True})
    with pytest.raises(ValueError, match="plain Llamas"):
        LlamaConfig.from_hf(biased)
