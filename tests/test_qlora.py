"""llmfs.finetune.qlora: NF4 from scratch, equal to bitsandbytes 0.50.2 on the CPU.

Bit for bit: the code book, the packed 4-bit codes, the per-block absmax (and, with double quantisation,
its 8-bit codes, their scales and offset), the dequantised values in float32, float16 and bfloat16, and
``bnb.nn.Linear4bit``'s output and input gradient in training mode. The one place that is not bit-exact is
Linear4bit's no-grad inference path on CPUs with AVX512-BF16 (it multiplies in bfloat16 there): a tolerance
of 2 % of the largest output, bfloat16's 8-bit mantissa, is stated below.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from llmfs.finetune.lora import LoRALinear, count_parameters
from llmfs.finetune.qlora import (
    DYNAMIC_MAP,
    NF4_LEVELS,
    NF4Linear,
    NF4Tensor,
    dequantize_absmax,
    dequantize_nf4,
    dynamic_map,
    nf4_levels,
    quantize_nf4,
)

bnb = pytest.importorskip("bitsandbytes")
import bitsandbytes.functional as bnbF  # noqa: E402


def weights(shape, dtype=torch.float32, seed=0, std=0.05) -> torch.Tensor:
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * std).to(dtype)


def test_code_books_equal_bitsandbytes():
    assert torch.equal(NF4_LEVELS, bnbF.get_4bit_type("nf4", device="cpu"))
    assert torch.equal(nf4_levels(), NF4_LEVELS), "the normal quantiles give the very same float32 levels"
    assert NF4_LEVELS[0] == -1 and NF4_LEVELS[7] == 0 and NF4_LEVELS[15] == 1 and (NF4_LEVELS.diff() > 0).all()
    assert torch.equal(dynamic_map(), bnbF.create_dynamic_map()) and torch.equal(DYNAMIC_MAP, dynamic_map())


@pytest.mark.parametrize("double_quant", [False, True])
@pytest.mark.parametrize("shape,dtype", [
    ((96, 200), torch.float32),
    ((640, 512), torch.float32),  # 5120 blocks: 20 blocks of double quantisation, all 8-bit codes exercised
    ((7, 9), torch.float32),  # one partial block, an odd count (a padding nibble); bnb's torch.compile'd fallback
    ((65, 64), torch.float16),
    ((128, 256), torch.bfloat16),
    ((3, 1000), torch.float32),
])
def test_quantize_and_dequantize_equal_bitsandbytes(shape, dtype, double_quant):
    w = weights(shape, dtype)
    packed, state = bnbF.quantize_4bit(w, blocksize=64, compress_statistics=double_quant, quant_type="nf4")
    q = quantize_nf4(w, block_size=64, double_quant=double_quant)
    assert torch.equal(q.packed, packed.view(-1)), "packed 4-bit codes differ from bitsandbytes'"
    assert torch.equal(q.absmax, state.absmax)
    if double_quant:
        assert torch.equal(q.absmax_scale, state.state2.absmax) and torch.equal(q.absmax_offset, state.offset)
    theirs = bnbF.dequantize_4bit(packed, state, quant_type="nf4")
    ours = dequantize_nf4(q)
    assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape == w.shape
    assert torch.equal(ours, theirs), f"dequantised values differ by {(ours.float() - theirs.float()).abs().max():.3g}"


def test_other_block_sizes_equal_bitsandbytes():
    w = weights((64, 256), seed=1)
    for block_size in (32, 128, 256):
        packed, state = bnbF.quantize_4bit(w, blocksize=block_size, quant_type="nf4")
        q = quantize_nf4(w, block_size=block_size)
        assert torch.equal(q.packed, packed.view(-1)) and torch.equal(dequantize_nf4(q), bnbF.dequantize_4bit(packed, state))


@pytest.mark.parametrize("shape,block_size", [((8, 80), 64), ((64, 256), 1024)])
def test_blocks_run_across_rows(shape, block_size):
    """Blocks are runs of the flattened tensor, as bitsandbytes' quantiser writes them, even where a block
    straddles two rows. bitsandbytes 0.50.2's AVX512 CPU dequantiser reads them row by row when the row length
    is a multiple of 16 but not of the block size (these two cases) and then returns wrong values; its own
    portable kernel (the "default" backend, below) reads them as written, and equals ours."""
    from bitsandbytes.backends.default.ops import _dequantize_4bit_compute

    w = weights(shape, seed=3)
    packed, state = bnbF.quantize_4bit(w, blocksize=block_size, quant_type="nf4")
    q = quantize_nf4(w, block_size=block_size)
    assert torch.equal(q.packed, packed.view(-1)) and torch.equal(q.absmax, state.absmax)
    portable = getattr(_dequantize_4bit_compute, "__wrapped__", _dequantize_4bit_compute)  # without torch.compile
    theirs = portable(packed.view(-1), state.absmax, NF4_LEVELS, block_size, shape, torch.float32)
    assert torch.equal(dequantize_nf4(q), theirs)


def test_nibble_order_and_error_bound():
    w = torch.tensor([-1.0, 1.0, 0.0, 0.45])  # levels 0, 15, 7, and 0.45 -> 0.4407 (index 12)
    q = quantize_nf4(w, block_size=4)
    assert q.packed.tolist() == [0x0F, 0x7C], "element 2i in the high nibble, 2i + 1 in the low one"
    w = weights((64, 128), seed=2)
    err = (dequantize_nf4(quantize_nf4(w)) - w).abs().view(-1, 64)  # (blocks, 64)
    half_gap = (NF4_LEVELS.diff().max() / 2).item()  # the widest gap is between 0.7230 and 1.0
    assert (err <= w.view(-1, 64).abs().amax(dim=1, keepdim=True) * half_gap + 1e-7).all()


def test_memory():
    w = weights((256, 256))
    assert quantize_nf4(w).bits_per_weight == 4.5  # 4 bits + a float32 absmax per 64 weights
    bits = quantize_nf4(w, double_quant=True).bits_per_weight  # 4 + 8/64 + 32/(64 * 256) + the offset
    assert abs(bits - (4 + 8 / 64 + 32 / (64 * 256) + 32 / w.numel())) < 1e-12
    dq = quantize_nf4(w, double_quant=True)  # the 8-bit scales: off by at most half a step of the dynamic code
    err = (dequantize_absmax(dq) - quantize_nf4(w).absmax).abs().max()
    assert err <= dq.absmax_scale.max() * DYNAMIC_MAP.diff().max() / 2


@pytest.mark.parametrize("double_quant", [True, False])
def test_nf4linear_equals_linear4bit(double_quant):
    torch.manual_seed(0)
    lin = nn.Linear(128, 64)
    ref = bnb.nn.Linear4bit(128, 64, quant_type="nf4", compress_statistics=double_quant)
    ref.load_state_dict(lin.state_dict())
    ref = ref.to("cpu")  # quantises here
    ours = NF4Linear(lin, double_quant=double_quant)
    assert torch.equal(ours.packed, ref.weight.data.view(-1))
    x = torch.randn(3, 5, 128, generator=torch.Generator().manual_seed(1))
    x_ref, x_ours = x.clone().requires_grad_(), x.clone().requires_grad_()
    ref.train()  # the training path (QLoRA's): dequantise in float32, then an ordinary matmul
    y_ref, y_ours = ref(x_ref), ours(x_ours)
    assert torch.equal(y_ours, y_ref), f"outputs differ by {(y_ours - y_ref).abs().max():.3g}"
    y_ref.square().sum().backward()
    y_ours.square().sum().backward()
    assert torch.equal(x_ours.grad, x_ref.grad)
    ref.eval()  # inference without grad: on AVX512-BF16 CPUs bitsandbytes multiplies in bfloat16 there
    with torch.no_grad():
        y_eval = ref(x)
    assert (y_eval - y_ours).abs().max() <= 0.02 * y_ours.abs().max()


def test_qlora_equals_peft_on_linear4bit():
    """LoRALinear on our NF4Linear = peft's LoRA on bitsandbytes' Linear4bit (same A and B)."""
    from peft import LoraConfig, get_peft_model

    class One(nn.Module):
        def __init__(self, proj: nn.Module):
            super().__init__()
            self.proj = proj

        def forward(self, x):
            return self.proj(x)

    torch.manual_seed(0)
    lin = nn.Linear(128, 64)
    q = bnb.nn.Linear4bit(128, 64, quant_type="nf4")
    q.load_state_dict(lin.state_dict())
    theirs = get_peft_model(One(q.to("cpu")), LoraConfig(r=4, lora_alpha=8, target_modules=["proj"])).train()
    ours = One(LoRALinear(NF4Linear(lin), r=4, alpha=8)).train()
    peft_layer = theirs.base_model.model.proj
    with torch.no_grad():
        nn.init.normal_(ours.proj.lora_B, std=0.1)
        peft_layer.lora_A["default"].weight.copy_(ours.proj.lora_A)
        peft_layer.lora_B["default"].weight.copy_(ours.proj.lora_B)
    x = torch.randn(4, 128, generator=torch.Generator().manual_seed(2))
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.equal(y_ours, y_theirs)
    y_ours.square().sum().backward()
    y_theirs.square().sum().backward()
    assert torch.equal(ours.proj.lora_A.grad, peft_layer.lora_A["default"].weight.grad)
    assert torch.equal(ours.proj.lora_B.grad, peft_layer.lora_B["default"].weight.grad)
    assert count_parameters(ours) == theirs.get_nb_trainable_parameters() == (4 * (128 + 64), 128 * 64 + 64 + 4 * 192)
    merged = ours.proj.merge()  # dequantised W + scaling * B @ A
    assert torch.allclose(merged(x), y_ours, atol=1e-5)


def test_bad_input_clear_error():
    with pytest.raises(ValueError, match=r"w must be a non-empty float32, float16 or bfloat16 tensor, got int64"):
        quantize_nf4(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="got float32 tensor of shape \\(0,\\)"):
        quantize_nf4(torch.zeros(0))
    with pytest.raises(ValueError, match="NaN or infinite"):
        quantize_nf4(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 0"):
        quantize_nf4(torch.zeros(4), block_size=0)
    with pytest.raises(TypeError, match="double_quant must be True or False"):
        quantize_nf4(torch.zeros(4), double_quant="yes")
    with pytest.raises(TypeError, match="q must be an NF4Tensor"):
        dequantize_nf4(torch.zeros(4))
    with pytest.raises(ValueError, match="dtype must be"):
        dequantize_nf4(quantize_nf4(torch.ones(4)), dtype=torch.int8)
    with pytest.raises(TypeError, match="base must be a torch.nn.Linear"):
        NF4Linear(nn.Conv1d(2, 2, 1))
    with pytest.raises(ValueError, match=r"x must be a float tensor \(\.\.\., 8\)"):
        NF4Linear(nn.Linear(8, 4))(torch.zeros(2, 7))
    with pytest.raises(ValueError, match=r"offset must be a probability in \(0.5, 1\)"):
        nf4_levels(1.0)
    assert isinstance(quantize_nf4(torch.ones(3)), NF4Tensor)
