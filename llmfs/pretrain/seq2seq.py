"""The original Transformer (Vaswani et al., 2017): an encoder-decoder, post-norm, sinusoidal positions.

    model = Transformer(src_vocab=40, tgt_vocab=13, d_model=128, n_heads=4, n_layers=3)
    logits = model(src, tgt_in)           # src (B, S), tgt_in (B, T) token ids -> (B, T, tgt_vocab)
    greedy_decode(model, src, bos_token_id=1, eos_token_id=2, max_new_tokens=12)   # -> list of token lists
    beam_search(model, src, bos_token_id=1, eos_token_id=2, max_new_tokens=12, num_beams=4)

Token id ``pad_id`` (0 by default) is padding in both languages. Layers name their parts like
``torch.nn.TransformerEncoderLayer`` / ``DecoderLayer`` do; ``load_torch_layer`` copies those weights.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs.pretrain.attention import MultiHeadAttention, causal_mask, padding_mask
from llmfs.pretrain.decoding import generate
from llmfs.pretrain.positions import sinusoidal_positions


class EncoderLayer(nn.Module):
    """x = LayerNorm(x + SelfAttention(x)); x = LayerNorm(x + FeedForward(x))."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, S, d_model); mask: bool, broadcastable to (B, heads, S, S)."""
        x = self.norm1(x + self.dropout(self.self_attn(x, mask=mask)))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class DecoderLayer(nn.Module):
    """Masked self-attention, then cross-attention to the encoder's output, then feed-forward."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        """y: (B, T, d_model), memory: (B, S, d_model); tgt_mask (.., T, T), memory_mask (.., T or 1, S)."""
        y = self.norm1(y + self.dropout(self.self_attn(y, mask=tgt_mask)))
        y = self.norm2(y + self.dropout(self.cross_attn(y, memory, mask=memory_mask)))
        return self.norm3(y + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(y))))))


@torch.no_grad()
def load_torch_layer(ours: nn.Module, theirs: nn.Module) -> nn.Module:
    """Copy a ``torch.nn.TransformerEncoderLayer`` / ``DecoderLayer`` (post-norm, ReLU) into ours."""
    if (not isinstance(theirs, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)) or not hasattr(ours, "self_attn")
            or hasattr(ours, "cross_attn") != hasattr(theirs, "multihead_attn")):
        raise TypeError(f"load_torch_layer copies an nn.TransformerEncoderLayer into an EncoderLayer, or a "
                        f"DecoderLayer's; got {type(theirs).__name__} into {type(ours).__name__}")
    ours.self_attn.load_torch(theirs.self_attn)
    if hasattr(theirs, "multihead_attn"):
        ours.cross_attn.load_torch(theirs.multihead_attn)
    for name in ("linear1", "linear2", "norm1", "norm2", "norm3"):
        if hasattr(theirs, name):
            getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())
    return ours


class Transformer(nn.Module):
    def __init__(self, src_vocab: int, tgt_vocab: int, d_model: int = 128, n_heads: int = 4,
                 n_layers: int = 3, d_ff: int = 512, dropout: float = 0.1, max_len: int = 256,
                 pad_id: int = 0):
        super().__init__()
        sizes = dict(src_vocab=src_vocab, tgt_vocab=tgt_vocab, d_model=d_model, n_heads=n_heads, n_layers=n_layers,
                     d_ff=d_ff, max_len=max_len)
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(pad_id, bool) or not isinstance(pad_id, numbers.Integral) or not 0 <= pad_id < min(src_vocab, tgt_vocab):
            raise ValueError(f"pad_id must be a token id in 0..{min(src_vocab, tgt_vocab) - 1}, got {pad_id!r}")
        self.d_model, self.pad_id = d_model, pad_id
        self.src_emb, self.tgt_emb = nn.Embedding(src_vocab, d_model), nn.Embedding(tgt_vocab, d_model)
        self.register_buffer("pe", sinusoidal_positions(max_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers))
        self.generator = nn.Linear(d_model, tgt_vocab)  # the pre-softmax projection
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def embed(self, emb: nn.Embedding, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, d_model): embedding * sqrt(d_model) + position (section 3.4 of the paper)."""
        if (not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long
                or not 1 <= tokens.size(1) <= len(self.pe)):
            got = f"shape {tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
            raise ValueError(f"tokens must be a (batch, time) int64 tensor with 1 <= time <= max_len = {len(self.pe)}, got {got}")
        if tokens.device.type == "cpu" and (tokens.min() < 0 or tokens.max() >= emb.num_embeddings):
            raise ValueError(f"token ids must be in 0..{emb.num_embeddings - 1}, got {int(tokens.min())}..{int(tokens.max())}")
        return self.dropout(emb(tokens) * math.sqrt(self.d_model) + self.pe[: tokens.size(1)])

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) -> memory (B, S, d_model) and its padding mask (B, 1, 1, S)."""
        src_mask = padding_mask(src, self.pad_id)
        x = self.embed(self.src_emb, src)
        for layer in self.encoder:
            x = layer(x, src_mask)
        return x, src_mask

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        """tgt (B, T) ids so far -> logits (B, T, tgt_vocab); position t sees tgt[:, :t+1] only.

        Target padding comes after the real tokens, so the causal mask already hides it."""
        y = self.embed(self.tgt_emb, tgt)
        for layer in self.decoder:
            y = layer(y, memory, causal_mask(tgt.size(1), tgt.device), src_mask)
        return self.generator(y)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: tgt is the target shifted right (BOS first); returns (B, T, tgt_vocab)."""
        memory, src_mask = self.encode(src)
        return self.decode(tgt, memory, src_mask)


def _strip(seq: list[int], eos_token_id: int) -> list[int]:
    """The tokens before the first EOS."""
    return seq[: seq.index(eos_token_id)] if eos_token_id in seq else seq


def _check_decode_args(model: Transformer, src: torch.Tensor, bos_token_id: int, eos_token_id: int,
                       max_new_tokens: int, num_beams: int = 1) -> None:
    if not (callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))):
        raise TypeError(f"model must be a seq2seq.Transformer (with encode and decode), got {type(model).__name__}")
    if not isinstance(src, torch.Tensor) or src.dim() != 2 or src.dtype != torch.long or src.size(0) < 1:
        raise ValueError(f"src must be a (batch, S) int64 tensor of token ids, got "
                         f"{tuple(src.shape) if isinstance(src, torch.Tensor) else type(src).__name__}"
                         f"{' ' + str(src.dtype) if isinstance(src, torch.Tensor) else ''}")
    for name, value, low in (("bos_token_id", bos_token_id, 0), ("eos_token_id", eos_token_id, 0),
                             ("max_new_tokens", max_new_tokens, 1), ("num_beams", num_beams, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@torch.no_grad()
def greedy_decode(model: Transformer, src: torch.Tensor, bos_token_id: int, eos_token_id: int,
                  max_new_tokens: int) -> list[list[int]]:
    """The most likely next token, one step at a time, for a batch src (B, S). Returns B token lists
    (BOS and EOS removed). The loop is ``llmfs.pretrain.decoding.generate``'s, with the decoder
    (attending to this batch's encoded source) as the model; the argument names are ``generate``'s."""
    _check_decode_args(model, src, bos_token_id, eos_token_id, max_new_tokens)
    memory, src_mask = model.encode(src)
    start = torch.full((src.size(0), 1), bos_token_id, dtype=torch.long, device=src.device)
    ys = generate(lambda tgt: model.decode(tgt, memory, src_mask), start, max_new_tokens,
                  eos_token_id=eos_token_id)
    return [_strip(row, eos_token_id) for row in ys[:, 1:].tolist()]


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, bos_token_id: int, eos_token_id: int, max_new_tokens: int,
                num_beams: int = 4, length_penalty: float = 0.0) -> list[list[int]]:
    """Keep the ``num_beams`` most likely prefixes at every step, for each row of src (B, S).

    A finished hypothesis is scored by its total log-probability divided by length ** length_penalty
    (0, the default here: no length normalisation; ``transformers`` defaults to 1). Returns the best
    finished hypothesis of each row (BOS and EOS removed). This is the paper-style search of 02PT/03,
    which stops once no prefix can beat the best finished sentence; ``llmfs.pretrain.decoding.beam_search``
    is the ``transformers``-exact one for decoder-only models, with the same argument names.
    """
    _check_decode_args(model, src, bos_token_id, eos_token_id, max_new_tokens, num_beams)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real) or not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be a finite number, got {length_penalty!r}")
    return [_beam_search_one(model, s[None], bos_token_id, eos_token_id, max_new_tokens, num_beams, length_penalty)
            for s in src]


def _beam_search_one(model, src, bos_id, eos_id, max_len, beam_size, alpha) -> list[int]:
    memory, src_mask = model.encode(src)  # (1, S, d), (1, 1, 1, S)
    beams = torch.full((1, 1), bos_id, dtype=torch.long, device=src.device)  # (k, t) alive prefixes
    scores = torch.zeros(1, device=src.device)  # (k,) their log-probabilities
    finished: list[tuple[float, list[int]]] = []  # (normalised score, tokens)
    for step in range(1, max_len + 1):
        k = beams.size(0)
        logp = model.decode(beams, memory.expand(k, -1, -1), src_mask.expand(k, -1, -1, -1))[:, -1].log_softmax(-1)
        cand = (scores[:, None] + logp).flatten()  # (k * vocab,) every one-token extension
        top = cand.topk(min(2 * beam_size, cand.numel()))  # enough to keep beam_size alive after EOS
        alive, alive_scores = [], []
        for score, idx in zip(top.values.tolist(), top.indices.tolist()):
            prefix, token = beams[idx // logp.size(1)], idx % logp.size(1)
            if token == eos_id:
                finished.append((score / step ** alpha, prefix[1:].tolist()))
            elif len(alive) < beam_size:
                alive.append(torch.cat([prefix, prefix.new_tensor([token])]))
                alive_scores.append(score)
        best_alive = max(alive_scores, default=-math.inf)
        if not alive or (alpha == 0 and finished and max(f[0] for f in finished) >= best_alive):
            break  # log-probabilities only fall: no alive prefix can beat the best finished one
        beams, scores = torch.stack(alive), torch.tensor(alive_scores, device=src.device)
    if not finished:  # nothing ended within max_len: return the best unfinished prefix
        finished = [(s / max_len ** alpha, b[1:].tolist()) for s, b in zip(scores.tolist(), beams)]
    return max(finished, key=lambda f: f[0])[1]
