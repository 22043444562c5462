"""llmfs.finetune.lora: LoRA by hand, equal to peft 0.21 on a tiny random transformers Llama.

Both get the same base weights and, copied from ours into peft's, the same A and B (B random, so that the
adapters change the output); then logits, gradients of A and B, merged weights and parameter counts agree.
"""

from __future__ import annotations

import copy
import math
import os

import pytest
import torch
import torch.nn as nn
from transformers import LlamaConfig, LlamaForCausalLM

from llmfs.finetune.lora import (
    LoRALinear,
    apply_lora,
    count_parameters,
    load_lora,
    lora_state_dict,
    merge_lora,
    save_lora,
)

R, ALPHA = 4, 12  # scaling alpha / r = 3; r != 1 and alpha != r, so scaling = alpha would be caught
TARGETS = ["q_proj", "v_proj", "down_proj"]
VOCAB = 64


def tiny_llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=32)
    return LlamaForCausalLM(cfg).eval()


def lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, LoRALinear)]


@pytest.fixture(scope="module")
def base():
    return tiny_llama()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))


def make_pair(base: nn.Module, dropout: float = 0.0):
    """(ours, peft's) with identical base weights and identical, nonzero, A and B."""
    from peft import LoraConfig, get_peft_model

    ours = apply_lora(copy.deepcopy(base), r=R, alpha=ALPHA, target_modules=TARGETS, dropout=dropout)
    theirs = get_peft_model(copy.deepcopy(base),
                            LoraConfig(r=R, lora_alpha=ALPHA, target_modules=TARGETS, lora_dropout=dropout))
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, layer in lora_layers(ours):
            layer.lora_B.normal_(std=0.1, generator=g)
            peft_layer = theirs.base_model.model.get_submodule(name)
            peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
            peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
    return ours, theirs


def test_wraps_exactly_the_targets_and_freezes_the_rest(base):
    model = apply_lora(copy.deepcopy(base), r=R, alpha=ALPHA, target_modules=TARGETS)
    wrapped = [n for n, _ in lora_layers(model)]
    assert wrapped == [f"model.layers.{i}.{part}" for i in range(2)
                       for part in ("self_attn.q_proj", "self_attn.v_proj", "mlp.down_proj")]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"{n}.{ab}" for n in wrapped for ab in ("lora_A", "lora_B")]


def test_starts_equal_to_the_base_model(base, ids):
    """B = 0 at init: same logits as the model without adapters; A is nn.Linear's (and peft's) kaiming-uniform."""
    model = apply_lora(copy.deepcopy(base), r=R, alpha=ALPHA, target_modules=TARGETS)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, base(ids).logits)
    for _, layer in lora_layers(model):
        bound = 1 / math.sqrt(layer.in_features)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert torch.equal(layer.lora_B, torch.zeros_like(layer.lora_B))
        assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.8 * bound


def test_logits_equal_peft(base, ids):
    ours, theirs = make_pair(base)
    with torch.no_grad():
        ours_logits, peft_logits = ours(ids).logits, theirs(input_ids=ids).logits
        assert not torch.allclose(ours_logits, base(ids).logits, atol=1e-3)  # the adapters do change the output
    diff = (ours_logits - peft_logits).abs().max().item()
    assert diff <= 1e-6, f"logits differ from peft by {diff:.3g}"


def test_scaling_is_alpha_over_r_not_alpha(base, ids):
    """The bug a peer course shipped: scaling = alpha. With r=4, alpha=12 that triples... then quadruples the update."""
    ours, theirs = make_pair(base)
    for name, layer in lora_layers(ours):
        assert layer.scaling == ALPHA / R == theirs.base_model.model.get_submodule(name).scaling["default"]
        assert torch.allclose(layer.delta_weight(), (ALPHA / R) * layer.lora_B @ layer.lora_A)
    # the same model with scaling = alpha gives other logits than peft's: the comparison above would catch it
    wrong = copy.deepcopy(ours)
    for _, layer in lora_layers(wrong):
        layer.scaling = layer.alpha
    with torch.no_grad():
        assert (wrong(ids).logits - theirs(input_ids=ids).logits).abs().max() > 1e-3


def test_gradients_of_A_and_B_equal_peft(base, ids):
    ours, theirs = make_pair(base)
    for logits in (ours(ids).logits, theirs(input_ids=ids).logits):
        nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1)).backward()
    worst = 0.0
    for name, layer in lora_layers(ours):
        peft_layer = theirs.base_model.model.get_submodule(name)
        for ab in ("A", "B"):
            ours_grad, peft_grad = getattr(layer, f"lora_{ab}").grad, getattr(peft_layer, f"lora_{ab}")["default"].weight.grad
            assert ours_grad is not None and ours_grad.abs().max() > 0
            worst = max(worst, (ours_grad - peft_grad).abs().max().item())
    assert worst <= 1e-6, f"gradients differ from peft by {worst:.3g}"
    assert all(p.grad is None for n, p in ours.named_parameters() if "lora_" not in n)  # the base stays frozen


def test_merged_weights_equal_peft_merge_and_unload(base, ids):
    ours, theirs = make_pair(base)
    with torch.no_grad():
        before = ours(ids).logits
    names = [n for n, _ in lora_layers(ours)]
    merged, peft_merged = merge_lora(ours), theirs.merge_and_unload()
    assert not lora_layers(merged)
    for name in names:
        layer, peft_layer = merged.get_submodule(name), peft_merged.get_submodule(name)
        assert type(layer) is nn.Linear and type(peft_layer) is nn.Linear
        assert torch.equal(layer.weight, peft_layer.weight), f"{name}: merged weight differs from peft's"
    with torch.no_grad():
        assert (merged(ids).logits - before).abs().max() < 1e-5  # same function, no adapter left


def test_trainable_parameter_count_equals_peft(base, capsys):
    ours, theirs = make_pair(base)
    trainable, total = count_parameters(ours)
    assert (trainable, total) == theirs.get_nb_trainable_parameters()
    # r * (in + out) per layer: q_proj 4*(32+32), v_proj 4*(32+16), down_proj 4*(64+32), two layers
    assert trainable == 2 * R * ((32 + 32) + (32 + 16) + (64 + 32))
    theirs.print_trainable_parameters()
    assert f"trainable params: {trainable:,} || all params: {total:,}" in capsys.readouterr().out


def test_dropout_equals_peft_in_training_mode(base, ids):
    """Dropout on the adapter's input only; with the same seed, the same masks as peft's."""
    ours, theirs = make_pair(base, dropout=0.3)
    ours.train(), theirs.train()
    torch.manual_seed(7)
    ours_logits = ours(ids).logits
    torch.manual_seed(7)
    peft_logits = theirs(input_ids=ids).logits
    assert (ours_logits - peft_logits).abs().max() <= 1e-6
    torch.manual_seed(8)
    assert (ours(ids).logits - ours_logits).abs().max() > 1e-4  # another seed, other masks


def test_lora_state_dict_save_and_load(base, ids, tmp_path):
    ours, _ = make_pair(base)
    sd = lora_state_dict(ours)
    assert len(sd) == 2 * len(lora_layers(ours)) and all(k.endswith((".lora_A", ".lora_B")) for k in sd)
    path = save_lora(tmp_path / "adapters" / "a.safetensors", ours)
    assert os.listdir(path.parent) == ["a.safetensors"]  # the temporary file was renamed, nothing left behind
    fresh = apply_lora(copy.deepcopy(base), r=R, alpha=ALPHA, target_modules=TARGETS)
    load_lora(path, fresh)
    with torch.no_grad():
        assert torch.equal(fresh(ids).logits, ours(ids).logits)
    other_alpha = apply_lora(copy.deepcopy(base), r=R, alpha=2 * ALPHA, target_modules=TARGETS)
    with pytest.raises(ValueError, match=r"alpha=12.*alpha=24"):
        load_lora(path, other_alpha)
    fewer = apply_lora(copy.deepcopy(base), r=R, alpha=ALPHA, target_modules=["q_proj"])
    with pytest.raises(ValueError, match="does not fit this model"):
        load_lora(path, fewer)
    (tmp_path / "cut.safetensors").write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_lora(tmp_path / "cut.safetensors", fresh)
    with pytest.raises(FileNotFoundError):
        load_lora(tmp_path / "missing.safetensors", fresh)


def test_single_layer_merge():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(6, 5), r=2, alpha=3.0)
    nn.init.normal_(layer.lora_B)
    x = torch.randn(4, 6)
    merged = layer.merge()
    assert torch.allclose(merged(x), layer(x), atol=1e-6)
    assert torch.equal(merged.weight, layer.base.weight + (layer.lora_B @ layer.lora_A) * 1.5)


def test_half_precision_base_keeps_float32_adapters_as_peft():
    """Over a bfloat16 layer, A and B are float32 (peft's autocast_adapter_dtype); output and merge equal peft's."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(32, 16)).to(torch.bfloat16)
    ours = apply_lora(copy.deepcopy(base), r=4, alpha=8, target_modules="0")
    theirs = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["0"]))
    layer, peft_layer = ours[0], theirs.base_model.model[0]
    assert layer.lora_A.dtype == peft_layer.lora_A["default"].weight.dtype == torch.float32
    with torch.no_grad():
        nn.init.normal_(layer.lora_B)
        peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
        peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
    x = torch.randn(3, 32).to(torch.bfloat16)
    with torch.no_grad():
        y = ours(x)
        assert y.dtype == torch.bfloat16 and torch.equal(y, theirs(x))
    assert torch.equal(merge_lora(ours)[0].weight, theirs.merge_and_unload()[0].weight)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(r=0), ValueError, r"r \(the rank\) must be an integer >= 1, got 0"),
    (dict(r=2.0), ValueError, r"r \(the rank\)"),
    (dict(alpha=0), ValueError, r"alpha must be a finite number > 0, got 0"),
    (dict(alpha=float("inf")), ValueError, r"alpha must be"),
    (dict(dropout=1.0), ValueError, r"dropout must be a number in \[0, 1\), got 1.0"),
    (dict(dropout=-0.1), ValueError, r"dropout must be"),
    (dict(target_modules=["wq"]), ValueError, r"no module of the model is named \['wq'\].*'q_proj'.*model.layers.0"),
    (dict(target_modules=["self_attn"]), ValueError, r"self_attn is a LlamaAttention, not an nn.Linear.*'q_proj'"),
    (dict(target_modules=[]), TypeError, r"target_modules must be"),
    (dict(target_modules=[3]), TypeError, r"target_modules must be"),
])
def test_bad_arguments_to_apply_lora(base, kwargs, error, message):
    with pytest.raises(error, match=message):
        apply_lora(copy.deepcopy(base), **{**dict(r=R, alpha=ALPHA, target_modules=TARGETS), **kwargs})


def test_other_mistakes_have_clear_errors(base):
    model = apply_lora(copy.deepcopy(base), r=R, alpha=ALPHA, target_modules=["q_proj"])
    with pytest.raises(ValueError, match="already has a LoRA adapter"):
        apply_lora(model, r=R, alpha=ALPHA, target_modules=["q_proj"])
    with pytest.raises(ValueError, match="no LoRALinear layer"):
        merge_lora(copy.deepcopy(base))
    with pytest.raises(ValueError, match="no LoRALinear layer"):
        lora_state_dict(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="base must be a torch.nn.Linear"):
        LoRALinear(nn.Conv1d(2, 2, 1), r=1, alpha=1)
    with pytest.raises(ValueError, match=r"x must be a float tensor \(\.\.\., 6\)"):
        LoRALinear(nn.Linear(6, 5), r=2, alpha=3)(torch.zeros(2, 5))
