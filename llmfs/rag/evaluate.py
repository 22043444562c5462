"""Evaluating retrieval and answers on SQuAD: a ranking per method, the gold passage's rank, confidence
intervals, and the local LLM as the reader.

    questions, paragraphs = squad_questions()
    texts, gold = [q.question for q in questions], [q.paragraph_id for q in questions]
    lexical = bm25_ranking(texts, paragraphs)                        # (nq, n) paragraph ids, best first
    dense = dense_ranking(encoder.encode(texts), encoder.encode(paragraphs))
    hybrid = hybrid_ranking([lexical, dense])                        # reciprocal-rank fusion, row by row
    reranked = rerank_ranking(model, tokenizer, texts, paragraphs, hybrid, top_n=10)
    ranks = gold_ranks(hybrid, gold)                                 # (nq,) 1 = the gold paragraph came first
    low, high = bootstrap_ci(ranks <= 5)                             # 95 % interval of recall@5
    replies = read(model, tokenizer, texts, [paragraphs[i] for i in hybrid[:, 0]])  # short answers

A **ranking** is a full order of the passages for each question, an ``(nq, n)`` int64 array of ids, best
first. With one relevant passage per question (SQuAD's gold paragraph) every retrieval metric is a
function of the gold's rank ``r``: recall@k is the share of questions with ``r <= k``, MRR the mean of
``1 / r``. The reranked ranking reorders only each row's first ``top_n`` (the LLM reads each of those
passages with the question, one forward pass each, priced in 04RAG/07: far too slow for the whole
collection); the rest keep the first stage's order.

The **reader** is SmolLM2-135M-Instruct asked, in its chat format, to answer in a few words from the
passage, its reply begun with "Answer:"; its greedy continuation, cut at the first line break, is scored
with SQuAD's exact match and F1 (``llmfs.rag.metrics``).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch.nn as nn

from llmfs.config import progress
from llmfs.finetune import sft
from llmfs.finetune.evaluate import generate_ids
from llmfs.rag.bm25 import BM25, tokenize
from llmfs.rag.hybrid import RRF_K, rrf
from llmfs.rag.rerank import rerank

READER_INSTRUCTION = "Read the passage and answer the question in a few words."
ANSWER_START = "Answer:"  # the assistant's reply begins here: the model writes what follows


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_texts(name: str, texts) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{name} must be a non-empty list of str, got {type(texts).__name__}"
                         + (" (a single str: wrap it in a list)" if isinstance(texts, str) else ""))
    return list(texts)


def _check_ranking(ranking, n_rows: int | None = None) -> np.ndarray:
    r = np.asarray(ranking)
    if r.ndim != 2 or r.size == 0 or not np.issubdtype(r.dtype, np.integer) or (n_rows is not None and len(r) != n_rows):
        raise ValueError("a ranking must be a 2-D integer array (questions, passages) of ids"
                         + (f" with {n_rows} rows" if n_rows is not None else "") + f", got {r.dtype} {r.shape}")
    return r


def ranking_of(scores: np.ndarray) -> np.ndarray:
    """(nq, n) scores, higher is better -> (nq, n) int64 ids, best first; ties keep the lower id first."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.size == 0 or scores.dtype.kind not in "fiu":
        raise ValueError(f"scores must be a 2-D array (questions, passages) of numbers, got {scores.dtype} {scores.shape}")
    return np.argsort(-scores, axis=1, kind="stable").astype(np.int64)


def bm25_ranking(questions: Sequence[str], passages: Sequence[str], **bm25_args) -> np.ndarray:
    """(nq, n) ids of ``passages`` by BM25 score for each question (``llmfs.rag.bm25``, rank_bm25's defaults)."""
    questions, passages = _check_texts("questions", questions), _check_texts("passages", passages)
    bm25 = BM25([tokenize(p) for p in passages], **bm25_args)
    return ranking_of(np.stack([bm25.get_scores(tokenize(q)) for q in questions]))


def dense_ranking(question_vectors: np.ndarray, passage_vectors: np.ndarray) -> np.ndarray:
    """(nq, n) ids by cosine: ``question_vectors`` (nq, dim) and ``passage_vectors`` (n, dim), unit rows."""
    Q, P = np.asarray(question_vectors), np.asarray(passage_vectors)
    if Q.ndim != 2 or P.ndim != 2 or Q.shape[1] != P.shape[1] or Q.size == 0 or P.size == 0:
        raise ValueError(f"question_vectors (nq, dim) and passage_vectors (n, dim) must share dim, got {Q.shape} and {P.shape}")
    return ranking_of(Q @ P.T)


def hybrid_ranking(rankings: Sequence[np.ndarray], k: int = RRF_K) -> np.ndarray:
    """Several (nq, n) rankings of the same questions fused row by row by reciprocal rank (``hybrid.rrf``)."""
    if isinstance(rankings, np.ndarray) or not isinstance(rankings, Sequence) or not rankings:
        raise ValueError("rankings must be a non-empty list of (questions, passages) rankings")
    rankings = [_check_ranking(r) for r in rankings]
    if len({r.shape for r in rankings}) != 1:
        raise ValueError(f"the rankings must have one shape, got {[r.shape for r in rankings]}")
    return ranking_of(np.stack([rrf([r[i] for r in rankings], k=k) for i in range(len(rankings[0]))]))


def rerank_ranking(model: nn.Module, tokenizer, questions: Sequence[str], passages: Sequence[str],
                   ranking: np.ndarray, top_n: int = 10, **kwargs) -> np.ndarray:
    """``ranking`` (nq, n) with each row's first ``top_n`` ids reordered by the LLM (``rerank.rerank``:
    how likely the question is after the passage); the others stay where they were. ``kwargs`` go to
    ``rerank.question_likelihood`` (``max_passage_tokens``, ``batch_size``)."""
    questions, passages = _check_texts("questions", questions), _check_texts("passages", passages)
    ranking = _check_ranking(ranking, len(questions)).copy()
    top_n = _check_int("top_n", top_n, 1)
    for i in progress(range(len(questions)), desc="reranking"):
        ranking[i, :top_n] = rerank(model, tokenizer, questions[i], ranking[i, :top_n], passages, **kwargs)
    return ranking


def gold_ranks(ranking: np.ndarray, gold: Sequence[int]) -> np.ndarray:
    """(nq,) int64: the 1-based rank of each question's one relevant id in its row of ``ranking``, or
    n + 1 when the row does not hold it (a partial ranking of n ids): never within the top k, and MRR
    must then count it as 0, ``np.where(r <= n, 1 / r, 0)``. With full rankings, MRR is ``mean(1 / r)``."""
    ranking = _check_ranking(ranking)
    gold = np.asarray(gold)
    if gold.shape != (len(ranking),) or not np.issubdtype(gold.dtype, np.integer):
        raise ValueError(f"gold must hold one integer id per question ({len(ranking)}), got {gold.dtype} {gold.shape}")
    hit = ranking == gold[:, None]  # (nq, n): True where the gold id sits
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, ranking.shape[1] + 1).astype(np.int64)


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one number per question): resample the
    questions with replacement ``n_boot`` times, keep the middle ``level`` of the resampled means.
    For a paired comparison of two methods, pass the per-question differences."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.isfinite(x).all():
        raise ValueError(f"values must be a non-empty 1-D sequence of finite numbers, got shape {x.shape}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    n_boot = _check_int("n_boot", n_boot, 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)  # (n_boot,)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def reader_prompt(question: str, passages: Sequence[str]) -> str:
    """The reader's prompt: SmolLM2's chat template with the instruction, the passage(s) and the question,
    and the assistant's reply already begun with ``ANSWER_START`` (a 135M model asked for "a few words"
    still tends to write a sentence; a reply that starts with "Answer:" is more often a short phrase)."""
    if not isinstance(question, str) or not question.strip():
        raise ValueError("question must be a non-empty str")
    passages = _check_texts("passages", passages)
    context = "\n\n".join(passages)  # several passages: one after the other, a blank line between
    content = f"{READER_INSTRUCTION}\n\nPassage: {context}\n\nQuestion: {question.strip()}"
    return sft.chat_prompt([{"role": "user", "content": content}], add_generation_prompt=True) + ANSWER_START


def short_answer(reply: str) -> str:
    """The reply's first non-empty line, without an 'Answer:' label: 'Answer: 23 years\\nBecause...' -> '23 years'."""
    if not isinstance(reply, str):
        raise TypeError(f"reply must be a str, got {type(reply).__name__}")
    line = next((s.strip() for s in reply.splitlines() if s.strip()), "")
    return line[len("answer:"):].strip() if line.lower().startswith("answer:") else line


def read(model: nn.Module, tokenizer, questions: Sequence[str], contexts: Sequence[str | Sequence[str]],
         max_new: int = 16, batch_size: int = 16) -> list[str]:
    """The reader's short answer to each question given its context (one passage, or a list of them),
    greedy (``finetune.evaluate.generate_ids``), at most ``max_new`` tokens, cut by ``short_answer``.
    A prompt that repeats (the same question and passage) is answered once."""
    questions = _check_texts("questions", questions)
    if isinstance(contexts, str) or not isinstance(contexts, Sequence) or len(contexts) != len(questions):
        raise ValueError(f"contexts must hold one passage (or list of passages) per question ({len(questions)}), "
                         f"got {type(contexts).__name__}")
    prompts = [reader_prompt(q, [c] if isinstance(c, str) else c) for q, c in zip(questions, contexts)]
    max_new, batch_size = _check_int("max_new", max_new, 1), _check_int("batch_size", batch_size, 1)
    unique = sorted(set(prompts), key=len)  # a prompt asked twice is answered once (greedy: the same reply)
    answer_of: dict[str, str] = {}
    for start in progress(range(0, len(unique), batch_size), desc="answering"):
        batch = unique[start:start + batch_size]  # similar lengths together: little padding
        for prompt, ids in zip(batch, generate_ids(model, tokenizer, batch, max_new, batch_size)):
            answer_of[prompt] = short_answer(tokenizer.decode(ids, skip_special_tokens=True))
    return [answer_of[p] for p in prompts]
