"""GPT-2, the way nanoGPT writes it: one file, one class per idea.

    model = GPT(GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384))
    logits = model(idx)              # idx: (batch, time) LongTensor -> (batch, time, vocab_size)
    model = GPT.from_hf(hf_model)    # the weights of a transformers.GPT2LMHeadModel, same logits
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.pretrain.positions import LearnedPositions

GELU_APPROXIMATIONS = {"tanh": "tanh", "exact": "none"}  # ours -> torch's ``approximate=`` argument


@dataclass
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # the longest context
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2
    layer_norm_eps: float = 1e-5
    gelu: str = "tanh"  # "tanh": GPT-2's approximation ("gelu_new"); "exact": the erf form (nanoGPT's, faster on CPU)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"GPTConfig.n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not isinstance(self.gelu, str) or self.gelu not in GELU_APPROXIMATIONS:
            raise ValueError(f"GPTConfig.gelu must be one of {sorted(GELU_APPROXIMATIONS)}, got {self.gelu!r}")
        eps = self.layer_norm_eps
        if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < 1:
            raise ValueError(f"GPTConfig.layer_norm_eps must be a small number > 0 such as 1e-5, got {self.layer_norm_eps!r}")
        if not isinstance(self.bias, bool):
            raise TypeError(f"GPTConfig.bias must be True or False, got {self.bias!r}")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)  # q, k, v for all heads at once
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, head_dim)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.approximate = GELU_APPROXIMATIONS[cfg.gelu]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"GPT takes a GPTConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),  # token embeddings
            wpe=LearnedPositions(cfg.block_size, cfg.n_embd),  # one learned vector per position
            drop=nn.Dropout(cfg.dropout),
            h=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
            ln_f=nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_eps, bias=cfg.bias),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # weight tying (Press & Wolf, 2017)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by 1/sqrt(2 n_layer)
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each tensor counted once (the tied lm_head adds nothing).

        ``non_embedding=True`` leaves out the lookup tables that do no arithmetic: the position table
        (the token table stays, since it is also the output head's matrix), as Kaplan et al. and nanoGPT
        count. ``llmfs.pretrain.llama.Llama.num_params`` means the same.
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx: (B, T) token ids -> logits (B, T, vocab_size)."""
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2 or idx.dtype not in (torch.int64, torch.int32) or idx.numel() == 0:
            got = type(idx).__name__
            if isinstance(idx, torch.Tensor):
                got = f"shape {tuple(idx.shape)} {str(idx.dtype).removeprefix('torch.')}"
            raise ValueError(f"idx must be a (batch, time) int64 tensor of token ids, got {got}")
        if idx.device != self.lm_head.weight.device:
            raise ValueError(f"idx is on {idx.device} but the model on {self.lm_head.weight.device}: move one of them")
        # token ids in range: checked on the CPU only (on a GPU, reading the answer back would stall every step)
        vocab = self.config.vocab_size
        if idx.device.type == "cpu" and not torch.compiler.is_compiling() and (idx.min() < 0 or idx.max() >= vocab):
            raise ValueError(f"token ids must be in 0..{vocab - 1}, got {int(idx.min())}..{int(idx.max())}")
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size {self.config.block_size}")
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(T))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    @classmethod
    def from_hf(cls, hf_model) -> GPT:
        """Copy the weights of a ``transformers.GPT2LMHeadModel`` (random or pretrained).

        Refuses, with a ``ValueError`` naming the setting, a GPT-2 variant this class does not compute
        the same way (another activation, MLP width, attention scaling, untied head, cross-attention).
        """
        c = getattr(hf_model, "config", None)
        if getattr(c, "model_type", None) != "gpt2" or not hasattr(hf_model, "state_dict"):
            raise TypeError(f"GPT.from_hf copies a transformers GPT2LMHeadModel, got {type(hf_model).__name__}")
        gelu = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "exact"}.get(c.activation_function)
        unsupported = {
            "activation_function": gelu is None,
            "n_inner": c.n_inner not in (None, 4 * c.n_embd),
            "scale_attn_weights": not c.scale_attn_weights,
            "scale_attn_by_inverse_layer_idx": c.scale_attn_by_inverse_layer_idx,
            "reorder_and_upcast_attn": c.reorder_and_upcast_attn,
            "add_cross_attention": getattr(c, "add_cross_attention", False),
            "tie_word_embeddings": not getattr(c, "tie_word_embeddings", True),
        }
        bad = [f"{k}={getattr(c, k, None)!r}" for k, v in unsupported.items() if v]
        if bad:
            raise ValueError(f"GPT.from_hf copies plain GPT-2 only; this config has {', '.join(bad)}")
        cfg = GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer,
                        n_head=c.n_head, n_embd=c.n_embd, layer_norm_eps=c.layer_norm_epsilon, gelu=gelu)
        model = cls(cfg)
        sd_hf = hf_model.state_dict()
        # GPT-2 stores its projections as Conv1D: weight (in, out), the transpose of nn.Linear's
        transposed = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
        with torch.no_grad():
            for name, p in model.state_dict().items():
                if name == "lm_head.weight" or name.endswith(".attn.bias"):
                    continue  # tied to wte / not a weight
                src = sd_hf[name]
                p.copy_(src.t() if name.endswith(transposed) else src)
        return model
