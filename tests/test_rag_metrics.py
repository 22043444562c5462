"""llmfs.rag.metrics: recall@k, MRR and nDCG on worked cases and against scikit-learn's ndcg_score;
SQuAD's exact match and F1 on the official script's cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from llmfs.rag import metrics

RANKED = [["a", "b", "c", "d"], ["x", "y", "z", "w"], ["p", "q", "r", "s"]]
RELEVANT = [{"b"}, {"w", "x"}, {"zz"}]


def test_recall_and_mrr_worked_cases():
    assert metrics.recall_at_k(RANKED, RELEVANT, 1) == pytest.approx((0 + 0.5 + 0) / 3)
    assert metrics.recall_at_k(RANKED, RELEVANT, 2) == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics.recall_at_k(RANKED, RELEVANT, 4) == pytest.approx((1 + 1 + 0) / 3)
    assert metrics.mrr(RANKED, RELEVANT) == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert metrics.mrr([["a", "b"]], [{"b"}], k=1) == 0.0


def test_ndcg_worked_case():
    gains = [{"c": 3.0, "a": 1.0}]
    dcg = 1 / math.log2(2) + 3 / math.log2(4)
    ideal = 3 / math.log2(2) + 1 / math.log2(3)
    assert metrics.ndcg_at_k([["a", "b", "c"]], gains, 3) == pytest.approx(dcg / ideal)
    assert metrics.ndcg_at_k([["a"]], [{"z": 0.0}], 3) == 0.0


@pytest.mark.parametrize("k", [1, 3, 5, 10])
def test_ndcg_equals_scikit_learn(k):
    rng = np.random.default_rng(k)
    n_docs = 12
    y_true = rng.integers(0, 4, size=(20, n_docs)).astype(float)  # graded relevance per (query, doc)
    y_score = rng.permutation(np.tile(np.arange(n_docs, dtype=float), (20, 1)).T).T  # distinct scores: no ties
    ranked = [list(np.argsort(-s)) for s in y_score]
    gains = [{d: g for d, g in enumerate(t) if g > 0} for t in y_true]
    assert metrics.ndcg_at_k(ranked, gains, k) == pytest.approx(ndcg_score(y_true, y_score, k=k), abs=1e-12)


def test_squad_exact_match_and_f1():
    assert metrics.normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert metrics.exact_match("the eiffel tower.", ["Eiffel Tower", "Paris"]) == 1.0
    assert metrics.exact_match("tower", "Eiffel Tower") == 0.0
    assert metrics.f1("the tower in Paris", ["Eiffel Tower"]) == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert metrics.f1("Denver Broncos", ["Denver Broncos", "Broncos"]) == 1.0
    assert metrics.f1("", ["x"]) == 0.0 and metrics.f1("a the an", ["the"]) == 0.0


@pytest.mark.parametrize("call, message", [
    (lambda: metrics.recall_at_k(RANKED, RELEVANT[:2], 1), "one collection of ids per query"),
    (lambda: metrics.recall_at_k(RANKED, RELEVANT, 0), "k must be"),
    (lambda: metrics.recall_at_k([], [], 1), "no queries"),
    (lambda: metrics.recall_at_k([["a"]], [set()], 1), "at least one relevant"),
    (lambda: metrics.recall_at_k("abc", ["a"] * 3, 1), "ranked must be"),
    (lambda: metrics.ndcg_at_k([["a"]], [["a"]], 1), "gains must hold"),
    (lambda: metrics.exact_match("x", []), "at least one reference"),
])
def test_bad_input_raises_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
