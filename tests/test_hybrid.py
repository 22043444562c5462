"""Reciprocal-rank fusion and MMR (llmfs.rag.hybrid), and the LLM reranker (llmfs.rag.rerank)."""

import numpy as np
import pytest

from llmfs.rag.hybrid import mmr, rrf


def test_reciprocal_rank_fusion_worked_case():
    scores = rrf([np.array([0, 1, 2]), np.array([2, 0, 1])])  # doc 0: ranks 1 and 2; doc 2: ranks 3 and 1
    assert np.allclose(scores, [1 / 61 + 1 / 62, 1 / 62 + 1 / 63, 1 / 63 + 1 / 61])
    assert list(np.argsort(-scores, kind="stable")) == [0, 2, 1]


def test_rrf_of_partial_rankings_counts_only_listed_documents():
    scores = rrf([[3], [1, 3]], n_docs=5, k=0)  # doc 3: rank 1 and rank 2; doc 1: rank 1
    assert np.allclose(scores, [0, 1, 0, 1 + 1 / 2, 0])


def unit(rows):
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_mmr_with_lambda_one_is_relevance_order():
    rng = np.random.default_rng(0)
    vectors, query = unit(rng.normal(size=(20, 8))), unit(rng.normal(size=(1, 8)))[0]
    cand = list(range(20))
    assert mmr(query, vectors, cand, k=5, lambda_=1.0) == list(np.argsort(-(vectors @ query), kind="stable")[:5])


def test_mmr_skips_a_near_duplicate():
    vectors = unit([[1, 0, 0], [1, 0.01, 0], [0.7, 0.7, 0]])  # 0 and 1 are near copies; 2 is different
    query = unit([[1, 0.2, 0]])[0]
    assert mmr(query, vectors, [0, 1, 2], k=2, lambda_=1.0) == [1, 0]
    assert mmr(query, vectors, [0, 1, 2], k=2, lambda_=0.5) == [1, 2], "the copy is redundant"


@pytest.mark.parametrize("call, match", [
    (lambda: rrf([]), "non-empty"),
    (lambda: rrf([[0, 0, 1]]), "twice"),
    (lambda: rrf([[0, 5]], n_docs=3), r"\[0, 3\)"),
    (lambda: rrf([[0.5, 1.0]]), "integer ids"),
    (lambda: rrf([[0, 1]], k=-1), "k must"),
    (lambda: mmr(np.ones(3), np.ones((4, 2)), [0], k=1), r"\(n, dim\)"),
    (lambda: mmr(np.ones(2), np.ones((4, 2)), [7], k=1), "candidates"),
    (lambda: mmr(np.ones(2), np.ones((4, 2)), [0, 0], k=1), "candidates"),
    (lambda: mmr(np.ones(2), np.ones((4, 2)), [0], k=0), "k must"),
    (lambda: mmr(np.ones(2), np.ones((4, 2)), [0], k=1, lambda_=2), "lambda_"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.fixture(scope="module")
def llm():
    from llmfs.finetune.model import load_smollm2

    return load_smollm2()


PASSAGES = ["The Eiffel Tower is a wrought-iron tower in Paris, completed in 1889 for the World's Fair.",
            "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the leaves of plants.",
            "The Nile flows north through eleven countries into the Mediterranean Sea."]


def test_batched_likelihood_equals_one_passage_at_a_time(llm):
    from llmfs.rag.rerank import question_likelihood

    question = "When was the Eiffel Tower completed?"
    together = question_likelihood(*llm, question, PASSAGES, batch_size=3)
    alone = np.array([question_likelihood(*llm, question, [p])[0] for p in PASSAGES])
    assert np.allclose(together, alone, atol=1e-4), (together, alone)
    assert np.all(together < 0), "mean log-probabilities"
    cut = question_likelihood(*llm, question, [PASSAGES[0]], max_passage_tokens=3)[0]
    assert cut != pytest.approx(together[0]), "the passage is cut to its first tokens"


def test_rerank_puts_the_answering_passage_first(llm):
    from llmfs.rag.rerank import rerank

    assert rerank(*llm, "In which city is the Eiffel Tower?", [2, 1, 0], PASSAGES)[0] == 0
    assert rerank(*llm, "What do plants make from light?", [0, 2, 1], PASSAGES)[0] == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(question=""), "question"),
    (dict(candidates=[]), "candidates"),
    (dict(candidates=[3]), "candidates"),
    (dict(max_passage_tokens=0), "max_passage_tokens"),
    (dict(batch_size=0), "batch_size"),
])
def test_rerank_refuses_bad_input(llm, kwargs, match):
    from llmfs.rag.rerank import rerank

    args = dict(question="Where is the tower?", candidates=[0, 1], passages=PASSAGES) | kwargs
    with pytest.raises(ValueError, match=match):
        rerank(*llm, **args)
