"""Llama, written from scratch like ``llmfs.pretrain.gpt``: GPT-2 with four parts swapped.

    RMSNorm instead of LayerNorm, RoPE instead of learned positions (``llmfs.pretrain.positions``), a SwiGLU MLP
    instead of GELU, grouped-query attention instead of multi-head; no biases; embeddings tied or not.

    model = Llama(LlamaConfig(vocab_size=49152, n_layer=30, n_head=9, n_kv_head=3, n_embd=576, ...))
    logits = model(idx)                # idx: (batch, time) LongTensor -> (batch, time, vocab_size)
    model = Llama.from_hf(hf_model)    # the weights of a transformers.LlamaForCausalLM, same logits

Module names follow Hugging Face's (``q_proj``, ``gate_proj``, ``input_layernorm`` ...), so that
``from_hf`` is a strict ``load_state_dict``: it fails loudly if a single tensor has no home.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.pretrain.positions import apply_rope, rope_cache


@dataclass
class LlamaConfig:
    """Defaults: SmolLM2-135M."""

    vocab_size: int = 49152
    block_size: int = 8192  # the longest context (size of the RoPE tables)
    n_layer: int = 30
    n_head: int = 9  # query heads
    n_kv_head: int = 3  # key/value heads; n_head // n_kv_head query heads share one (GQA)
    n_embd: int = 576
    hidden_dim: int = 1536  # width of the SwiGLU MLP
    rope_theta: float = 100000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # lm_head.weight is embed_tokens.weight

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LlamaConfig.{name} must be a positive integer, got {value!r}")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise ValueError(f"LlamaConfig.n_embd ({self.n_embd}) must be n_head ({self.n_head}) times an even head_dim")
        if self.n_head % self.n_kv_head:
            raise ValueError(f"LlamaConfig.n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head})")
        if not self.rope_theta > 0 or not self.norm_eps > 0:
            raise ValueError(f"LlamaConfig.rope_theta and norm_eps must be > 0, got {self.rope_theta!r}, {self.norm_eps!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(f"LlamaConfig.tie_embeddings must be True or False, got {self.tie_embeddings!r}")

    @classmethod
    def from_hf(cls, c) -> LlamaConfig:
        """The same numbers as a ``transformers.LlamaConfig``, under nanoGPT-style names."""
        if getattr(c, "model_type", None) != "llama":
            raise TypeError(f"LlamaConfig.from_hf reads a transformers LlamaConfig, got {type(c).__name__}")
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        if (head_dim * c.num_attention_heads != c.hidden_size or c.rope_parameters["rope_type"] != "default"
                or c.attention_bias or c.mlp_bias or c.hidden_act != "silu"):
            raise ValueError("only plain Llamas: head_dim * n_head == hidden_size, default RoPE, no biases, SiLU")
        return cls(vocab_size=c.vocab_size, block_size=c.max_position_embeddings, n_layer=c.num_hidden_layers,
                   n_head=c.num_attention_heads, n_kv_head=c.num_key_value_heads, n_embd=c.hidden_size,
                   hidden_dim=c.intermediate_size, rope_theta=c.rope_parameters["rope_theta"],
                   norm_eps=c.rms_norm_eps, tie_embeddings=c.tie_word_embeddings)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without the mean and without the bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()  # the mean of squares in float32, even for bf16 inputs
        return self.weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): a gated MLP (Shazeer 2020), three matrices instead of two."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv_head, T, hd) -> (B, n_kv_head * n_rep, T, hd): kv head j serves query heads j*n_rep..."""
    return x.repeat_interleave(n_rep, dim=1)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention where groups of query heads share one key/value head."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.n_head, self.n_kv_head = cfg.n_head, cfg.n_kv_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * self.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * self.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.n_embd, cfg.n_kv_head * self.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * self.head_dim, cfg.n_embd, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """x: (B, T, C); cos, sin: (T, head_dim) -> (B, T, C)."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # positions enter here, not at the input
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim))


class Block(nn.Module):
    """Pre-norm block, as GPT-2: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.self_attn = GroupedQueryAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.n_embd, cfg.hidden_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        if not isinstance(cfg, LlamaConfig):
            raise TypeError(f"Llama takes a LlamaConfig, got {type(cfg).__name__}")
        self.config = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # no position embedding table
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_cache(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # (block_size, head_dim)
        self.register_buffer("rope_sin", sin, persistent=False)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters, each tensor counted once (a tied lm_head adds nothing).

        ``non_embedding=True`` leaves out the lookup tables that do no arithmetic, as
        ``llmfs.pretrain.gpt.GPT.num_params`` does: Llama has no position table, and its token table
        counts only when it is also the output head (tied).
        """
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed_tokens.weight.numel() if non_embedding and not self.config.tie_embeddings else n

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
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size {self.config.block_size}")
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]
        x = self.embed_tokens(idx)  # (B, T, C)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.norm(x))

    @classmethod
    def from_hf(cls, hf_model) -> Llama:
        """Copy the weights of a ``transformers.LlamaForCausalLM`` (random, pretrained or from GGUF)."""
        if not hasattr(hf_model, "config") or not hasattr(hf_model, "state_dict"):
            raise TypeError(f"Llama.from_hf copies a transformers LlamaForCausalLM, got {type(hf_model).__name__}")
        model = cls(LlamaConfig.from_hf(hf_model.config))
        # same names but the "model." prefix; strict: every tensor must find its place
        sd = {k.removeprefix("model."): v for k, v in hf_model.state_dict().items()}
        model.load_state_dict(sd, strict=True)
        return model.to(device=hf_model.device, dtype=hf_model.dtype)
