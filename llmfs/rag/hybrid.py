"""Combining and diversifying rankings: reciprocal-rank fusion and maximal marginal relevance.

    scores = rrf([bm25_ranking, dense_ranking], n_docs)   # (n_docs,) fused score, higher is better
    top = np.argsort(-scores, kind="stable")[:10]
    picked = mmr(query_vec, doc_vecs, candidates=top, k=5, lambda_=0.7)   # 5 ids: relevant, not repetitive

**Reciprocal-rank fusion** (Cormack, Clarke and Büttcher 2009) adds, for each ranking, ``1 / (k + rank)``
(rank 1 is the best): it needs no score calibration between retrievers (a BM25 score of 12 and a cosine
of 0.6 cannot be added; their ranks can), and ``k = 60`` keeps one retriever's first place from
outweighing agreement between several. A ranking may be partial (its top hits only): documents missing
from it get nothing from it.

**Maximal marginal relevance** (Carbonell and Goldstein 1998) picks greedily the candidate with the best
``lambda_ * sim(query, d) - (1 - lambda_) * max sim(d, already picked)``: ``lambda_ = 1`` is plain
relevance order, smaller values trade relevance for variety (five near-copies of one passage waste four
slots of the prompt).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

RRF_K = 60  # 1 / (RRF_K + rank): 60 as in Cormack et al. 2009


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def rrf(rankings: Sequence[Sequence[int]], n_docs: int | None = None, k: int = RRF_K) -> np.ndarray:
    """Fused score of every document, ``(n_docs,)`` float64: the sum over ``rankings`` (each a sequence of
    document ids, best first, full or partial, no repeats) of ``1 / (k + rank)``. ``n_docs`` defaults to
    the length of the first ranking (full rankings)."""
    if isinstance(rankings, np.ndarray) and rankings.ndim == 2:
        rankings = list(rankings)
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence) or len(rankings) == 0:
        raise ValueError("rankings must be a non-empty list of rankings (document ids, best first)")
    k = _check_int("k", k, 0)
    n_docs = _check_int("n_docs", len(rankings[0]) if n_docs is None else n_docs, 1)
    scores = np.zeros(n_docs)
    for ranking in rankings:
        ids = np.asarray(ranking)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"each ranking must be a 1-D sequence of integer ids, got {np.asarray(ranking).dtype} "
                             f"of shape {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= n_docs):
            raise ValueError(f"ids must lie in [0, {n_docs}), got {ids.min()}..{ids.max()}")
        if len(np.unique(ids)) != ids.size:
            raise ValueError("a ranking lists a document twice")
        scores[ids] += 1.0 / (k + 1 + np.arange(ids.size))  # rank 1 adds 1 / (k + 1)
    return scores


def mmr(query: np.ndarray, vectors: np.ndarray, candidates: Sequence[int], k: int, lambda_: float = 0.5) -> list[int]:
    """``k`` ids picked from ``candidates`` (ids into ``vectors``) by maximal marginal relevance, in the
    order picked. ``query``: (dim,) and ``vectors``: (n, dim), both unit length (cosine = dot)."""
    query, vectors = np.asarray(query, dtype=np.float64), np.asarray(vectors, dtype=np.float64)
    if query.ndim != 1 or vectors.ndim != 2 or vectors.shape[1] != query.shape[0]:
        raise ValueError(f"query must be (dim,) and vectors (n, dim), got {query.shape} and {vectors.shape}")
    cand = np.asarray(candidates)
    if cand.ndim != 1 or cand.size == 0 or not np.issubdtype(cand.dtype, np.integer) or cand.min() < 0 \
            or cand.max() >= len(vectors) or len(np.unique(cand)) != cand.size:
        raise ValueError(f"candidates must be distinct ids in [0, {len(vectors)}), got {list(candidates)[:10]!r}")
    k = _check_int("k", k, 1)
    if isinstance(lambda_, bool) or not isinstance(lambda_, numbers.Real) or not 0 <= lambda_ <= 1:
        raise ValueError(f"lambda_ must be a number in [0, 1], got {lambda_!r}")
    relevance = vectors[cand] @ query  # (c,)
    pairwise = vectors[cand] @ vectors[cand].T  # (c, c)
    picked: list[int] = []  # positions in cand
    redundancy = np.full(cand.size, -np.inf)  # max similarity to anything picked so far
    for _ in range(min(k, cand.size)):
        gain = lambda_ * relevance - (1 - lambda_) * (redundancy if picked else 0.0)
        gain[picked] = -np.inf
        best = int(np.argmax(gain))  # ties: the earlier candidate
        picked.append(best)
        redundancy = np.maximum(redundancy, pairwise[best])
    return [int(cand[i]) for i in picked]
