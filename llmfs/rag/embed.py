"""all-MiniLM-L6-v2, the sentence encoder, written from scratch: BERT, mean pooling, unit length.

    model = MiniLM.load()                              # the cached weights (llmfs.assets), eval mode, CPU
    E = model.encode(["a sentence", "another one"])    # (2, 384) float32, each row of length 1
    E @ E.T                                            # cosine similarities

A sentence becomes WordPiece tokens ``[CLS] ... [SEP]`` (the model's own tokenizer, through
``transformers``: the tokenizer is not this lesson), then a 6-layer BERT encoder turns each token into
a 384-d vector that depends on the whole sentence. The sentence's vector is the **mean** of its tokens'
vectors (padding left out), scaled to length 1, so that a dot product is a cosine. Its weights are the
real model's (``model.safetensors``, 22.6M parameters); ``sentence-transformers`` with the same folder
(``minilm_folder()``) gives the same vectors.

BERT (Devlin et al., 2019) differs from GPT in three ways that matter here: attention sees the whole
sentence (no causal mask; only padding is masked), a token's input also adds a "segment" embedding
(all segment 0 for one sentence), and LayerNorm comes *after* each residual sum (post-LN).
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from llmfs import assets
from llmfs.pretrain.attention import MultiHeadAttention


def minilm_folder() -> Path:
    """The cache folder of all-MiniLM-L6-v2 in sentence-transformers' layout (``config.json``,
    ``model.safetensors``, tokenizer files, ``modules.json``, ``1_Pooling/``), every file hash-checked.
    ``SentenceTransformer(str(minilm_folder()))`` and ``AutoTokenizer.from_pretrained`` load it offline."""
    for name, asset in assets.REGISTRY.items():
        if asset.folder.split("/")[0] == assets.MINILM_FOLDER:
            assets.path(name)  # raises AssetMissing (with the command to run) or AssetHashMismatch
    return assets.cache_dir() / assets.MINILM_FOLDER


def _describe(t) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).removeprefix('torch.')}" if isinstance(t, torch.Tensor) else type(t).__name__


@dataclass
class BertConfig:
    vocab_size: int = 30522
    max_positions: int = 512  # the longest input in tokens
    n_segments: int = 2  # "token types": sentence A or B
    dim: int = 384
    n_layer: int = 6
    n_head: int = 12
    hidden_dim: int = 1536  # the feed-forward layer's width
    layer_norm_eps: float = 1e-12

    def __post_init__(self):
        for name in ("vocab_size", "max_positions", "n_segments", "dim", "n_layer", "n_head", "hidden_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BertConfig.{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_head:
            raise ValueError(f"BertConfig.dim ({self.dim}) must be a multiple of n_head ({self.n_head})")

    @classmethod
    def from_json(cls, path: str | Path) -> BertConfig:
        """The config.json of a transformers BERT model."""
        c = json.loads(Path(path).read_text())
        kind = (c.get("model_type"), c.get("hidden_act"), c.get("position_embedding_type", "absolute"))
        if kind != ("bert", "gelu", "absolute"):
            raise ValueError(f"{path} is not a BERT config with exact GELU and absolute positions")
        return cls(c["vocab_size"], c["max_position_embeddings"], c["type_vocab_size"], c["hidden_size"],
                   c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"], c["layer_norm_eps"])


class EncoderLayer(nn.Module):
    """Post-LN: x = LN(x + attention(x)); x = LN(x + FF(x)), FF = Linear, exact GELU, Linear."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.attn = MultiHeadAttention(cfg.dim, cfg.n_head)
        self.ln1 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.ff_in = nn.Linear(cfg.dim, cfg.hidden_dim)
        self.ff_out = nn.Linear(cfg.hidden_dim, cfg.dim)
        self.ln2 = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x: (B, T, dim); mask: (B, 1, 1, T) bool, True on real tokens -> (B, T, dim)."""
        x = self.ln1(x + self.attn(x, mask=mask))
        return self.ln2(x + self.ff_out(F.gelu(self.ff_in(x))))


class MiniLM(nn.Module):
    """The BERT encoder and the sentence embedding on top of it."""

    def __init__(self, cfg: BertConfig, tokenizer=None, max_length: int = 256):
        super().__init__()
        self.cfg, self.tokenizer, self.max_length = cfg, tokenizer, max_length
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.pos_emb = nn.Embedding(cfg.max_positions, cfg.dim)
        self.seg_emb = nn.Embedding(cfg.n_segments, cfg.dim)
        self.ln_emb = nn.LayerNorm(cfg.dim, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_layer))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask: (B, T) int (mask 1 on tokens, 0 on padding) -> token vectors (B, T, dim)."""
        self._check_batch(input_ids, attention_mask)
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self.tok_emb(input_ids) + self.pos_emb(positions) + self.seg_emb(torch.zeros_like(input_ids))
        x = self.ln_emb(x)
        mask = attention_mask.bool()[:, None, None, :]  # every query may look at every real token
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def _check_batch(self, input_ids, attention_mask) -> None:
        ints = (torch.int32, torch.int64)
        if not (isinstance(input_ids, torch.Tensor) and input_ids.dtype in ints and input_ids.dim() == 2
                and input_ids.numel() > 0 and input_ids.size(1) <= self.cfg.max_positions
                and isinstance(attention_mask, torch.Tensor) and attention_mask.shape == input_ids.shape
                and attention_mask.dtype in (*ints, torch.bool) and ((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError(f"input_ids and attention_mask must be (batch, time) integer tensors of one shape (the mask "
                             f"of 0 and 1), batch >= 1 and 1 <= time <= {self.cfg.max_positions}, got "
                             f"{_describe(input_ids)} and {_describe(attention_mask)}")
        if input_ids.min() < 0 or input_ids.max() >= self.cfg.vocab_size:
            raise ValueError(f"token ids must be in 0..{self.cfg.vocab_size - 1}, got {input_ids.min()}..{input_ids.max()}")

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) ids and mask -> (B, dim) sentence vectors: mean over the real tokens, L2-normalised."""
        tokens = self(input_ids, attention_mask)
        m = attention_mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
        mean = (tokens * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return F.normalize(mean, p=2, dim=-1)

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentences -> (n, dim) float32 unit vectors, in the order given.

        Texts longer than ``max_length`` tokens (256, as sentence-transformers) are cut. Batches hold
        texts of similar length (sorted), so little compute goes to padding."""
        if self.tokenizer is None:
            raise ValueError("this MiniLM has no tokenizer: make it with MiniLM.load(), or call embed() on token ids")
        if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(f"texts must be a non-empty list of str, got {type(texts).__name__}"
                             + (" (a single str: wrap it in a list)" if isinstance(texts, str) else ""))
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        order = np.argsort([-len(t) for t in texts], kind="stable")  # longest first, as sentence-transformers
        device = self.tok_emb.weight.device
        out = np.empty((len(texts), self.cfg.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt")
            out[idx] = self.embed(batch["input_ids"].to(device), batch["attention_mask"].to(device)).float().cpu().numpy()
        return out

    @classmethod
    def load(cls, folder: str | Path | None = None) -> MiniLM:
        """The model of a transformers BERT folder (default: the cached all-MiniLM-L6-v2), in eval mode."""
        from safetensors.torch import load_file
        from transformers import AutoTokenizer

        folder = minilm_folder() if folder is None else Path(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        max_length = 256
        if (folder / "sentence_bert_config.json").is_file():
            max_length = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
        model = cls(BertConfig.from_json(folder / "config.json"), tokenizer, max_length)
        model.load_hf_state_dict(load_file(str(folder / "model.safetensors")))
        return model.eval()

    @torch.no_grad()
    def load_hf_state_dict(self, sd: dict[str, torch.Tensor]) -> MiniLM:
        """Copy the weights of a transformers ``BertModel`` state dict (its names) into ours."""
        sd = {k.removeprefix("bert."): v for k, v in sd.items()}
        ours = {"tok_emb.weight": "embeddings.word_embeddings.weight",
                "pos_emb.weight": "embeddings.position_embeddings.weight",
                "seg_emb.weight": "embeddings.token_type_embeddings.weight",
                "ln_emb.weight": "embeddings.LayerNorm.weight", "ln_emb.bias": "embeddings.LayerNorm.bias"}
        per_layer = {"attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
                     "attn.v_proj": "attention.self.value", "attn.out_proj": "attention.output.dense",
                     "ln1": "attention.output.LayerNorm", "ff_in": "intermediate.dense",
                     "ff_out": "output.dense", "ln2": "output.LayerNorm"}
        for i in range(self.cfg.n_layer):
            for mine, theirs in per_layer.items():
                for p in ("weight", "bias"):
                    ours[f"layers.{i}.{mine}.{p}"] = f"encoder.layer.{i}.{theirs}.{p}"
        missing = sorted(v for v in ours.values() if v not in sd)
        if missing:
            raise ValueError(f"the state dict is not a BertModel's of this size: {len(missing)} weights missing, "
                             f"such as {missing[:3]}")
        try:
            self.load_state_dict({mine: sd[theirs] for mine, theirs in ours.items()})  # checks every shape
        except RuntimeError as err:
            raise ValueError(f"the BertModel weights do not fit this config: {err}") from None
        return self
