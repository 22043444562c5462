"""Scoring retrieval and answers.

Retrieval, for each query a ranked list of document ids and the set of relevant ones:

    recall_at_k(ranked, relevant, k=5)   # mean fraction of the relevant documents found in the top k
    mrr(ranked, relevant)                # mean of 1 / rank of the first relevant document (0 if none)
    ndcg_at_k(ranked, gains, k=10)       # graded relevance {id: gain}, discounted by log2(rank + 1)

Answers, as in SQuAD v1.1's official script (lower case, no punctuation, no articles a/an/the, single
spaces), the best score over the reference answers:

    exact_match(prediction, answers)     # 1.0 or 0.0
    f1(prediction, answers)              # overlap of the bags of words
"""

from __future__ import annotations

import math
import numbers
import re
import string
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence


def _check(ranked, relevant, k, k_optional: bool = False) -> None:
    if isinstance(ranked, (str, bytes)) or not isinstance(ranked, Sequence) or not all(
            isinstance(r, Sequence) and not isinstance(r, str) for r in ranked):
        raise ValueError("ranked must be a list with one ranked list of ids per query")
    if isinstance(relevant, (str, bytes)) or not isinstance(relevant, Sequence) or len(relevant) != len(ranked):
        raise ValueError(f"relevant must hold one collection of ids per query ({len(ranked)}), "
                         f"got {type(relevant).__name__} of length {len(relevant) if hasattr(relevant, '__len__') else '?'}")
    if not ranked:
        raise ValueError("no queries to score")
    if (k is not None or not k_optional) and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1):
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def recall_at_k(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[set], k: int) -> float:
    """Mean over queries of |relevant ∩ top k| / |relevant|; with one relevant document per query this
    is the fraction of queries whose document is in the top k (hit rate)."""
    _check(ranked, relevant, k)
    if any(len(rel) == 0 for rel in relevant):
        raise ValueError("every query needs at least one relevant id")
    return sum(len(set(r[:k]) & set(rel)) / len(set(rel)) for r, rel in zip(ranked, relevant)) / len(ranked)


def mrr(ranked: Sequence[Sequence[Hashable]], relevant: Sequence[set], k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant id (counting only the top k when k is given)."""
    _check(ranked, relevant, k, k_optional=True)
    total = 0.0
    for r, rel in zip(ranked, relevant):
        rank = next((i for i, doc in enumerate(r[:k], 1) if doc in rel), None)
        total += 1 / rank if rank else 0.0
    return total / len(ranked)


def ndcg_at_k(ranked: Sequence[Sequence[Hashable]], gains: Sequence[Mapping[Hashable, float]], k: int) -> float:
    """Mean normalised discounted cumulative gain: DCG@k = sum over ranks i of gain_i / log2(i + 1),
    divided by the DCG of the best possible order; a query with no positive gain scores 0."""
    _check(ranked, gains, k)
    if not all(isinstance(g, Mapping) for g in gains):
        raise ValueError("gains must hold one {id: gain} mapping per query")
    total = 0.0
    for r, g in zip(ranked, gains):
        dcg = sum(g.get(doc, 0.0) / math.log2(i + 1) for i, doc in enumerate(r[:k], 1))
        ideal = sum(x / math.log2(i + 1) for i, x in enumerate(sorted(g.values(), reverse=True)[:k], 1))
        total += dcg / ideal if ideal > 0 else 0.0
    return total / len(ranked)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation and the articles a/an/the, collapse spaces."""
    if not isinstance(text, str):
        raise TypeError(f"an answer must be a str, got {type(text).__name__}")
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", text).split())


def _answers(answers) -> list[str]:
    if isinstance(answers, str):
        return [answers]
    if not answers:
        raise ValueError("answers must hold at least one reference answer")
    return list(answers)


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference answer, else 0.0."""
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in _answers(answers)))


def _f1(prediction: str, answer: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(answer).split()
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def f1(prediction: str, answers: str | Sequence[str]) -> float:
    """The best token F1 between the normalised prediction and any reference answer."""
    return max(_f1(prediction, a) for a in _answers(answers))
