"""llmfs.rag.evaluate: rankings of each retriever, the gold's rank, bootstrap intervals, the LLM reader."""

import math

import numpy as np
import pytest

from llmfs.rag import evaluate
from llmfs.rag.bm25 import BM25, tokenize
from llmfs.rag.hybrid import rrf

PASSAGES = ["The Eiffel Tower was finished in 1889 in Paris.",
            "Marie Curie won the Nobel Prize in Physics in 1903.",
            "The Nile is the longest river in Africa.",
            "Paris is the capital of France and its largest city."]
QUESTIONS = ["When was the Eiffel Tower finished?", "Which river is the longest in Africa?"]


def test_ranking_of_sorts_best_first_and_breaks_ties_by_id():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    assert evaluate.ranking_of(scores).tolist() == [[1, 3, 2, 0], [0, 1, 2, 3]]
    assert evaluate.ranking_of(scores).dtype == np.int64


def test_bm25_ranking_is_the_order_of_bm25_scores():
    ranking = evaluate.bm25_ranking(QUESTIONS, PASSAGES)
    bm25 = BM25([tokenize(p) for p in PASSAGES])
    for q, row in zip(QUESTIONS, ranking):
        assert row.tolist() == np.argsort(-bm25.get_scores(tokenize(q)), kind="stable").tolist()
    assert ranking[:, 0].tolist() == [0, 2]


def test_dense_ranking_is_the_order_of_cosines():
    P = np.eye(3, dtype=np.float32)
    Q = np.array([[0.1, 0.9, 0.4], [0.0, 0.0, 1.0]], dtype=np.float32)
    assert evaluate.dense_ranking(Q, P).tolist() == [[1, 2, 0], [2, 0, 1]]


def test_hybrid_ranking_fuses_each_row_by_reciprocal_rank():
    a = np.array([[0, 1, 2], [2, 1, 0]])
    b = np.array([[2, 0, 1], [2, 0, 1]])
    fused = evaluate.hybrid_ranking([a, b])
    for i in range(2):
        assert fused[i].tolist() == np.argsort(-rrf([a[i], b[i]]), kind="stable").tolist()
    assert fused[0].tolist() == [0, 2, 1]  # doc 0: ranks 1 and 2; doc 2: ranks 3 and 1; doc 1: ranks 2 and 3
    assert fused[1, 0] == 2  # first in both


def test_gold_ranks_worked_case_and_a_missing_gold():
    ranking = np.array([[7, 2, 4, 9, 1], [4, 7, 2, 9, 1], [1, 2, 3, 4, 5]])
    assert evaluate.gold_ranks(ranking, [4, 4, 0]).tolist() == [3, 1, 6]  # 0 is not in the row: n + 1
    ranks = evaluate.gold_ranks(ranking, [4, 4, 9])  # the worked case of 04RAG/07: recall@1 and MRR
    assert np.mean(ranks <= 1) == pytest.approx(1 / 3)
    assert np.mean(np.where(ranks <= ranking.shape[1], 1 / ranks, 0.0)) == pytest.approx((1 / 3 + 1 + 0) / 3)


def test_bootstrap_interval_of_a_proportion_matches_the_binomial():
    x = (np.random.default_rng(1).random(2000) < 0.3).astype(float)
    low, high = evaluate.bootstrap_ci(x, n_boot=4000)
    half = 1.96 * math.sqrt(x.mean() * (1 - x.mean()) / x.size)
    assert low < x.mean() < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)
    assert evaluate.bootstrap_ci(x, n_boot=4000) == (low, high), "seeded: the same interval every time"
    assert evaluate.bootstrap_ci([0.5] * 10) == (0.5, 0.5)


def test_short_answer_keeps_the_first_line_without_a_label():
    assert evaluate.short_answer(" 23 years\nBecause the regatta...") == "23 years"
    assert evaluate.short_answer("\n\nAnswer: Levi's Stadium") == "Levi's Stadium"
    assert evaluate.short_answer("") == ""


def test_reader_prompt_is_the_chat_template_with_the_reply_begun():
    from transformers import AutoTokenizer

    from llmfs import assets
    from llmfs.finetune.model import SMOLLM2

    tokenizer = AutoTokenizer.from_pretrained(assets.converted(SMOLLM2))
    prompt = evaluate.reader_prompt(QUESTIONS[0], PASSAGES[:2])
    content = f"{evaluate.READER_INSTRUCTION}\n\nPassage: {PASSAGES[0]}\n\n{PASSAGES[1]}\n\nQuestion: {QUESTIONS[0]}"
    expected = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                             add_generation_prompt=True)
    assert prompt == expected + evaluate.ANSWER_START


@pytest.fixture(scope="module")
def llm():
    from llmfs.finetune.model import load_smollm2

    return load_smollm2()


def test_rerank_ranking_reorders_only_the_top_n(llm):
    from llmfs.rag.rerank import rerank

    model, tokenizer = llm
    first = np.array([[3, 1, 0, 2], [0, 1, 2, 3]])
    out = evaluate.rerank_ranking(model, tokenizer, QUESTIONS, PASSAGES, first, top_n=3)
    for q, row, new in zip(QUESTIONS, first, out):
        assert new[:3].tolist() == rerank(model, tokenizer, q, row[:3], PASSAGES)
        assert new[3] == row[3], "below the top n nothing moves"
    assert first.tolist() == [[3, 1, 0, 2], [0, 1, 2, 3]], "the input ranking is not changed"


def test_read_answers_each_prompt_once_and_in_order(llm):
    model, tokenizer = llm
    questions = [QUESTIONS[0], QUESTIONS[1], QUESTIONS[0]]
    replies = evaluate.read(model, tokenizer, questions, [PASSAGES[0], PASSAGES[2], [PASSAGES[0]]], max_new=8)
    assert len(replies) == 3 and all(isinstance(r, str) and "\n" not in r for r in replies)
    assert replies[0] == replies[2], "a passage, or a list of that one passage: the same prompt, the same answer"
    assert replies[0] != replies[1]


@pytest.mark.parametrize("call, error, match", [
    (lambda: evaluate.ranking_of(np.ones(3)), ValueError, "2-D"),
    (lambda: evaluate.bm25_ranking("when?", PASSAGES), ValueError, "wrap it in a list"),
    (lambda: evaluate.bm25_ranking(QUESTIONS, []), ValueError, "passages must be a non-empty list"),
    (lambda: evaluate.dense_ranking(np.ones((2, 3)), np.ones((4, 5))), ValueError, "share dim"),
    (lambda: evaluate.hybrid_ranking([]), ValueError, "non-empty list"),
    (lambda: evaluate.hybrid_ranking([np.zeros((2, 3), int), np.zeros((2, 4), int)]), ValueError, "one shape"),
    (lambda: evaluate.hybrid_ranking([np.ones((2, 3))]), ValueError, "integer array"),
    (lambda: evaluate.gold_ranks(np.array([[0, 1]]), [0, 1]), ValueError, "one integer id per question"),
    (lambda: evaluate.gold_ranks(np.array([0, 1]), [0]), ValueError, "2-D integer array"),
    (lambda: evaluate.bootstrap_ci([]), ValueError, "non-empty"),
    (lambda: evaluate.bootstrap_ci([1.0, math.nan]), ValueError, "finite"),
    (lambda: evaluate.bootstrap_ci([1.0], level=95), ValueError, "level"),
    (lambda: evaluate.bootstrap_ci([1.0], n_boot=0), ValueError, "n_boot"),
    (lambda: evaluate.reader_prompt("", PASSAGES), ValueError, "question"),
    (lambda: evaluate.reader_prompt("q?", "one passage"), ValueError, "wrap it in a list"),
    (lambda: evaluate.short_answer(None), TypeError, "str"),
])
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("kwargs, match", [
    ({"top_n": 0}, "top_n"),
    ({"ranking": np.zeros((1, 4), int)}, "2 rows"),
    ({"questions": "one question"}, "wrap it in a list"),
])
def test_rerank_ranking_refuses_bad_input(llm, kwargs, match):
    model, tokenizer = llm
    args = dict(questions=QUESTIONS, passages=PASSAGES, ranking=np.zeros((2, 4), int), top_n=2) | kwargs
    with pytest.raises(ValueError, match=match):
        evaluate.rerank_ranking(model, tokenizer, **args)


def test_read_refuses_bad_input(llm):
    model, tokenizer = llm
    with pytest.raises(ValueError, match="one passage"):
        evaluate.read(model, tokenizer, QUESTIONS, PASSAGES[:1])
    with pytest.raises(ValueError, match="max_new"):
        evaluate.read(model, tokenizer, QUESTIONS[:1], PASSAGES[:1], max_new=0)
    with pytest.raises(TypeError, match="causal LM"):
        evaluate.read(object(), tokenizer, QUESTIONS[:1], PASSAGES[:1])
