"""NF4, the 4-bit NormalFloat of QLoRA (Dettmers et al. 2023), written from scratch and equal to bitsandbytes.

    q = quantize_nf4(w)                    # w (out, in) float -> NF4Tensor: 4 bits per weight + one scale per block
    w_hat = dequantize_nf4(q)              # back to w's shape and dtype; |w - w_hat| <= 0.14 * absmax of its block
    q = quantize_nf4(w, double_quant=True) # the scales quantised too (8 bits each): ~4.13 bits per weight in all
    layer = NF4Linear(linear)              # a frozen 4-bit nn.Linear: dequantises, then matmuls
    LoRALinear(NF4Linear(linear), r=8, alpha=16)   # QLoRA: a 4-bit base and a float adapter on top

The recipe, as ``bitsandbytes.functional.quantize_4bit(..., quant_type="nf4")`` runs it:
1. flatten the tensor and cut it into blocks of ``block_size`` (64) values;
2. per block, ``absmax`` = the largest |value|; divide by it, so the block lies in [-1, 1];
3. replace each value by the index (0..15) of the nearest of the 16 NF4 levels ``NF4_LEVELS``;
4. pack two indices per byte, the first in the high nibble (bitsandbytes' order).
Double quantisation (bitsandbytes' ``compress_statistics``): the float32 absmax of every block is itself
quantised to 8 bits: subtract their mean, cut into blocks of 256, scale each block by its own absmax and
round to the nearest of the 256 values of the "dynamic" 8-bit code book (``dynamic_map``).

The NF4 levels are quantiles of a standard normal distribution (``nf4_levels`` derives them), so that
normally distributed weights fall into every level equally often: 16 values from -1 to 1, with an exact 0.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DOUBLE_QUANT_BLOCK = 256  # block size of the 8-bit quantisation of the absmax (bitsandbytes' nested blocksize)
LUT_SIZE = 65536  # points of the grid on which bitsandbytes' CPU kernel rounds before its 8-bit lookup
NF4_OFFSET = 0.9677083  # the outermost quantile: norm.ppf(0.9677083) ~ 1.848 standard deviations (bitsandbytes)


def nf4_levels(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 levels (16,) float32, derived from quantiles of N(0, 1) as QLoRA's appendix and
    bitsandbytes' ``create_normal_map`` do: 8 positive quantiles, 7 negative ones, an exact zero,
    the whole divided by the largest. Asymmetric on purpose: one more positive level, so that 0 is exact."""
    if isinstance(offset, bool) or not isinstance(offset, numbers.Real) or not 0.5 < offset < 1:
        raise ValueError(f"offset must be a probability in (0.5, 1), got {offset!r}")

    def quantiles(n: int) -> torch.Tensor:  # n - 1 quantiles from `offset` down to (not including) the median
        p = torch.linspace(offset, 0.5, n)[:-1]  # float32 probabilities, as bitsandbytes makes them
        return torch.special.ndtri(p.double())  # the inverse normal CDF (scipy's norm.ppf), in float64

    levels = torch.cat([quantiles(9), torch.zeros(1, dtype=torch.float64), -quantiles(8)]).float().sort().values
    return levels / levels.max()


# The code book as bitsandbytes hard-codes it (get_4bit_type("nf4")); ``nf4_levels()`` gives the same float32 values.
NF4_LEVELS = torch.tensor([
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
])


def dynamic_map() -> torch.Tensor:
    """The 256 values (256,) float32, sorted, of bitsandbytes' signed "dynamic" 8-bit code
    (``create_dynamic_map``, after Dettmers 2015): for each decade 10^-6 .. 10^0, 2^i evenly spaced
    fractions, with both signs, then 0 and 1. Fine steps near 0, coarse ones near +-1."""
    values: list[float] = []
    for i in range(7):  # one decade per exponent: 10^(i - 6) times 2^i fractions in (0.1, 1)
        edges = torch.linspace(0.1, 1, 2**i + 1)
        means = (edges[:-1] + edges[1:]) / 2
        values += ((10 ** (i - 6)) * means).tolist() + (-(10 ** (i - 6)) * means).tolist()
    values += [0.0, 1.0]
    return torch.tensor(sorted(values))


DYNAMIC_MAP = dynamic_map()


@dataclass(frozen=True)
class NF4Tensor:
    """A tensor quantised to NF4. ``packed`` (ceil(n/2),) uint8 holds two 4-bit level indices per byte,
    element 2i in the high nibble; ``absmax`` holds one scale per block of ``block_size`` elements:
    (n_blocks,) float32, or, with double quantisation, (n_blocks,) uint8 indices into ``DYNAMIC_MAP``
    with ``absmax_scale`` (ceil(n_blocks/256),) float32 and ``absmax_offset`` () float32 to decode them."""

    packed: torch.Tensor
    absmax: torch.Tensor
    shape: torch.Size
    dtype: torch.dtype
    block_size: int
    absmax_scale: torch.Tensor | None = None
    absmax_offset: torch.Tensor | None = None

    @property
    def double_quant(self) -> bool:
        return self.absmax_scale is not None

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of memory it takes: the codes and every scale."""
        extra = [self.absmax_scale, self.absmax_offset] if self.double_quant else []
        return sum(t.numel() * t.element_size() for t in [self.packed, self.absmax, *extra])

    @property
    def bits_per_weight(self) -> float:
        """4.5 with float32 scales per block of 64 (4 + 32/64); about 4.127 with double quantisation."""
        return 8 * self.nbytes / self.numel


def _check_float_tensor(name: str, t) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.dtype not in FLOAT_DTYPES or t.numel() == 0:
        got = f"{str(t.dtype).removeprefix('torch.')} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) \
            else type(t).__name__
        raise ValueError(f"{name} must be a non-empty float32, float16 or bfloat16 tensor, got {got}")
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the meta device: it has no values to quantise")
    return t


def _check_block_size(block_size) -> int:
    if isinstance(block_size, bool) or not isinstance(block_size, numbers.Integral) or block_size < 1:
        raise ValueError(f"block_size must be an integer >= 1, got {block_size!r}")
    return int(block_size)


def _blocks(flat: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Blockwise absmax scaling, as bitsandbytes' kernels do it. flat (n,) float32 ->
    (scaled (n,) in [-1, 1], absmax (n_blocks,)). Full blocks are multiplied by 1/absmax; the last, shorter
    block is divided by its absmax, as in bitsandbytes (the two can differ in the last bit)."""
    n = flat.numel()
    full = n - n % block_size
    blocks = flat[:full].view(-1, block_size)  # (n_full_blocks, block_size)
    absmax = blocks.abs().amax(dim=1)  # (n_full_blocks,)
    scaled = [(blocks * (1.0 / absmax.clamp(min=1e-38))[:, None]).reshape(-1)]
    if full < n:
        last = flat[full:].abs().amax().clamp(min=1e-38)  # an all-zero block keeps absmax 1e-38, decoding to 0
        absmax = torch.cat([absmax, last[None]])
        scaled.append(flat[full:] / last)
    return torch.cat(scaled).clamp(-1, 1), absmax


def _nearest_code_lut(code: torch.Tensor) -> torch.Tensor:
    """(65536,) uint8: for each point -1 + 2i/65535 of a fine grid on [-1, 1], the index of the nearest value
    of ``code`` (256 sorted values; a tie goes to the lower one). bitsandbytes' CPU kernel builds this table
    once instead of searching the code book for every value."""
    midpoints = 0.5 * (code[:-1] + code[1:])  # (255,) the boundaries between neighbouring values
    grid = -1.0 + (2.0 * torch.arange(LUT_SIZE, dtype=torch.float32, device=code.device)) / (LUT_SIZE - 1)
    return torch.searchsorted(midpoints, grid).to(torch.uint8)  # how many boundaries lie below each point


def _quantize_absmax(absmax: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """8-bit blockwise quantisation of the scales (double quantisation). absmax (m,) float32 ->
    (codes (m,) uint8, scale (ceil(m/256),) float32, offset () float32).

    Each value, divided by its block's absmax, is first rounded to the 65536-point grid of
    ``_nearest_code_lut``, then looked up: that is how bitsandbytes' CPU kernel does it, and why a value
    within half a grid step (1.5e-5) of the boundary between two codes can get the second-nearest one."""
    offset = absmax.mean()
    x = absmax - offset  # centred: the scales are all positive, so half the code book would go unused
    m = x.numel()
    blocks = F.pad(x, (0, -m % DOUBLE_QUANT_BLOCK)).view(-1, DOUBLE_QUANT_BLOCK)  # zeros keep each absmax
    scale = blocks.abs().amax(dim=1)  # (n_blocks,)
    normed = (blocks * (1.0 / scale)[:, None]).clamp(-1, 1)  # in [-1, 1]; an all-zero block gives NaN here
    grid_index = ((normed + 1.0) * 0.5 * (LUT_SIZE - 1) + 0.5).nan_to_num(0).long()  # nearest grid point
    codes = _nearest_code_lut(DYNAMIC_MAP.to(x.device))[grid_index]  # (n_blocks, 256)
    codes[scale == 0] = 0  # an all-zero block: code 0 (it decodes to 0 * code[0] = 0 anyway)
    return codes.reshape(-1)[:m], scale, offset


def quantize_nf4(w: torch.Tensor, block_size: int = 64, double_quant: bool = False) -> NF4Tensor:
    """Quantise ``w`` (any shape, float32/float16/bfloat16) to NF4 in blocks of ``block_size`` consecutive
    elements (of the flattened tensor). Same bytes as ``bitsandbytes.functional.quantize_4bit(w, blocksize=...,
    quant_type="nf4", compress_statistics=double_quant)``."""
    w = _check_float_tensor("w", w)
    block_size = _check_block_size(block_size)
    if not isinstance(double_quant, bool):
        raise TypeError(f"double_quant must be True or False, got {double_quant!r}")
    flat = w.detach().reshape(-1).float()  # (n,)
    if not torch.isfinite(flat).all():
        raise ValueError("w holds NaN or infinite values: they have no 4-bit code")
    scaled, absmax = _blocks(flat, block_size)  # (n,), (n_blocks,)
    levels = NF4_LEVELS.to(w.device)
    midpoints = (levels[:-1] + levels[1:]) / 2  # (15,) the boundaries between neighbouring levels
    if scaled.numel() % 2:
        scaled = F.pad(scaled, (0, 1))  # an odd count: the last byte's low nibble is padding (the level 0.0)
    idx = torch.bucketize(scaled, midpoints).to(torch.uint8)  # (n,) nearest level; a tie goes to the lower one
    packed = (idx[0::2] << 4) | idx[1::2]  # (ceil(n/2),) uint8: element 2i high, 2i+1 low
    if not double_quant:
        return NF4Tensor(packed, absmax, w.shape, w.dtype, block_size)
    codes, scale, offset = _quantize_absmax(absmax)
    return NF4Tensor(packed, codes, w.shape, w.dtype, block_size, scale, offset)


def _check_nf4(q) -> NF4Tensor:
    """q, after checking that its parts fit together (a hand-made or altered NF4Tensor may not)."""
    if not isinstance(q, NF4Tensor):
        raise TypeError(f"q must be an NF4Tensor (from quantize_nf4), got {type(q).__name__}")
    n, bs = q.numel, q.block_size
    n_blocks = -(-n // bs) if isinstance(bs, int) and bs >= 1 else -1
    parts = [q.packed, q.absmax] + ([q.absmax_scale, q.absmax_offset] if q.double_quant else [])
    if not all(isinstance(t, torch.Tensor) for t in parts) or q.dtype not in FLOAT_DTYPES or n < 1 or n_blocks < 1 \
            or q.packed.dtype != torch.uint8 or tuple(q.packed.shape) != (-(-n // 2),) \
            or tuple(q.absmax.shape) != (n_blocks,) \
            or q.absmax.dtype != (torch.uint8 if q.double_quant else torch.float32) \
            or (q.double_quant and tuple(q.absmax_scale.shape) != (-(-n_blocks // DOUBLE_QUANT_BLOCK),)) \
            or len({t.device for t in parts}) > 1:
        raise ValueError(f"q does not hold a consistent NF4 tensor of shape {tuple(q.shape)} in blocks of {bs}: "
                         f"packed {tuple(getattr(q.packed, 'shape', ()))}, absmax {tuple(getattr(q.absmax, 'shape', ()))}")
    return q


def dequantize_absmax(q: NF4Tensor) -> torch.Tensor:
    """The per-block scales (n_blocks,) float32; decoded from their 8-bit codes when double-quantised."""
    q = _check_nf4(q)
    if not q.double_quant:
        return q.absmax
    code = DYNAMIC_MAP.to(q.absmax.device)
    m = q.absmax.numel()
    values = F.pad(code[q.absmax.long()], (0, -m % DOUBLE_QUANT_BLOCK)).view(-1, DOUBLE_QUANT_BLOCK)
    return (values * q.absmax_scale[:, None]).reshape(-1)[:m] + q.absmax_offset


def dequantize_nf4(q: NF4Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Back to a float tensor of ``q.shape``: level[index] * absmax of its block, computed in float32,
    then rounded to ``dtype`` (default: the dtype ``w`` had). Equal to ``bitsandbytes.functional.dequantize_4bit``."""
    absmax = dequantize_absmax(q)  # (n_blocks,) float32
    dtype = q.dtype if dtype is None else dtype
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be torch.float32, float16 or bfloat16, got {dtype!r}")
    n = q.numel
    idx = torch.stack([q.packed >> 4, q.packed & 0xF], dim=1).reshape(-1)[:n]  # (n,) unpacked, in order
    values = NF4_LEVELS.to(q.packed.device)[idx.long()]  # (n,) in [-1, 1]
    scale = absmax.repeat_interleave(q.block_size)[:n]  # (n,) the absmax of each element's block
    return (values * scale).to(dtype).view(q.shape)


class NF4Linear(nn.Module):
    """A frozen linear layer stored in NF4: forward(x) = x @ dequantize(W).T + b, like ``bnb.nn.Linear4bit``
    (quant_type="nf4"). x (..., in_features) -> (..., out_features). The weight is not trainable (it is a
    buffer, not a parameter); wrap the layer in ``llmfs.finetune.lora.LoRALinear`` to train an adapter on
    top (QLoRA). ``double_quant`` defaults to True, as Linear4bit's ``compress_statistics``."""

    def __init__(self, base: nn.Linear, block_size: int = 64, double_quant: bool = True):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"base must be a torch.nn.Linear, got {type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        q = quantize_nf4(base.weight, block_size, double_quant)  # (out, in) -> 4 bits each
        self.shape, self.dtype, self.block_size = q.shape, q.dtype, q.block_size
        self.register_buffer("packed", q.packed)
        self.register_buffer("absmax", q.absmax)
        self.register_buffer("absmax_scale", q.absmax_scale)  # None (not registered) without double quantisation
        self.register_buffer("absmax_offset", q.absmax_offset)
        self.bias = None if base.bias is None else nn.Parameter(base.bias.detach().clone(), requires_grad=False)

    @property
    def weight_nf4(self) -> NF4Tensor:
        return NF4Tensor(self.packed, self.absmax, self.shape, self.dtype, self.block_size, self.absmax_scale,
                         self.absmax_offset)

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """W (out_features, in_features) as floats (default: the dtype of the original weight)."""
        return dequantize_nf4(self.weight_nf4, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dtype not in FLOAT_DTYPES or x.dim() == 0 \
                or x.shape[-1] != self.in_features:
            got = f"{str(x.dtype).removeprefix('torch.')} tensor of shape {tuple(x.shape)}" \
                if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must be a float tensor (..., {self.in_features}), got {got}")
        if x.device != self.packed.device:
            raise ValueError(f"x is on {x.device} but the layer on {self.packed.device}: move one of them")
        w = self.dequantized_weight(x.dtype)  # straight to x's dtype, as bitsandbytes does
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, w, bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"block_size={self.block_size}, double_quant={self.absmax_scale is not None}")
