"""Reranking retrieved passages with the local LLM: how likely is the question, given the passage?

    model, tokenizer = load_smollm2()
    scores = question_likelihood(model, tokenizer, question, passages)   # (len(passages),) mean log-prob
    order = rerank(model, tokenizer, question, candidates, all_passages)  # candidate ids, best first

A retriever scores a question and a passage separately (BM25 counts words, MiniLM compares two vectors
made apart). A reranker reads them *together*, so it is too slow for the whole corpus and is run on the
retriever's top candidates only. Practitioners use a cross-encoder trained for it (e.g. ms-marco MiniLM);
none is available offline to this course, so we use the language model we have, as in UPR (Sachan et al.
2022, "Improving Passage Retrieval with Zero-Shot Question Generation"): a passage that answers a
question makes that question *predictable*. The score is the mean log-probability of the question's
tokens after the prompt

    Passage: <passage, at most max_passage_tokens tokens>
    Please write a question based on this passage.
    Question: <question>

The mean, not the sum, so a question's length does not matter (it is the same for every candidate
anyway). One forward pass per passage, with the output head (576 x 49,152 for SmolLM2) applied only at
the question's positions: still ~0.3-0.6 s per 200-token passage on a laptop core for a 135M model, so
rerank a few candidates per question, never the corpus.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

INSTRUCTION = "\nPlease write a question based on this passage.\nQuestion:"  # UPR's prompt


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def question_likelihood(model: nn.Module, tokenizer, question: str, passages: Sequence[str],
                        max_passage_tokens: int = 192, batch_size: int = 16) -> np.ndarray:
    """Mean log-probability of ``question``'s tokens given each passage, ``(len(passages),)`` float64
    (higher: the passage makes the question more likely). Passages longer than ``max_passage_tokens``
    tokens are cut to their start. Batched, right-padded: the same scores as one passage at a time."""
    if not isinstance(model, nn.Module) or not hasattr(model, "get_decoder"):
        raise TypeError(f"model must be a transformers causal LM (with get_decoder), got {type(model).__name__}")
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty string")
    if isinstance(passages, str) or not isinstance(passages, Sequence) or not all(isinstance(p, str) for p in passages):
        raise ValueError("passages must be a list of str")
    max_passage_tokens = _check_int("max_passage_tokens", max_passage_tokens, 1)
    batch_size = _check_int("batch_size", batch_size, 1)
    head, tail, q = _ids(tokenizer, "Passage: "), _ids(tokenizer, INSTRUCTION), _ids(tokenizer, " " + question.strip())
    rows = [head + _ids(tokenizer, p)[:max_passage_tokens] + tail + q for p in passages]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    scores = np.empty(len(rows))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # similar lengths together: little padding
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(rows[i]) for i in idx)
        ids = torch.tensor([rows[i] + [pad] * (width - len(rows[i])) for i in idx], device=model.device)  # (B, T)
        mask = torch.tensor([[1] * len(rows[i]) + [0] * (width - len(rows[i])) for i in idx], device=model.device)
        lengths = torch.tensor([len(rows[i]) for i in idx])
        positions = lengths[:, None] - 1 - len(q) + torch.arange(len(q))  # (B, Lq): the tokens that predict q
        with torch.inference_mode():
            hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, dim)
            hidden = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]).to(hidden.device))
            logits = model.get_output_embeddings()(hidden).float()  # (B, Lq, vocab): the head on Lq rows, not T
        target = torch.tensor(q, device=logits.device).expand(len(idx), -1)  # (B, Lq)
        logp = F.log_softmax(logits, dim=-1).gather(-1, target[..., None])[..., 0]  # (B, Lq)
        scores[idx] = logp.mean(dim=1).double().cpu().numpy()
    return scores


def rerank(model: nn.Module, tokenizer, question: str, candidates: Sequence[int], passages: Sequence[str],
           **kwargs) -> list[int]:
    """``candidates`` (ids into ``passages``, e.g. a retriever's top 20) reordered by ``question_likelihood``,
    best first; ties keep the retriever's order. ``kwargs`` go to ``question_likelihood``."""
    cand = [int(c) for c in candidates] if all(isinstance(c, numbers.Integral) and not isinstance(c, bool)
                                               for c in candidates) else None
    if not cand or min(cand) < 0 or max(cand) >= len(passages):
        raise ValueError(f"candidates must be a non-empty list of ids in [0, {len(passages)}), got {list(candidates)[:10]!r}")
    scores = question_likelihood(model, tokenizer, question, [passages[c] for c in cand], **kwargs)
    return [cand[i] for i in np.argsort(-scores, kind="stable")]
