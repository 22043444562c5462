"""llmfs.rag.bm25: the same scores as rank_bm25.BM25Okapi (bit for bit: the same sums in the same order),
on the King James verses and on small corpora built for the edge cases: repeated query and document words,
words no document has, words in more than half of the documents (negative idf, floored at epsilon times
the mean idf), empty documents, other k1 / b / epsilon; and clear errors on bad input."""

import math

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from llmfs.data import kjv_verses
from llmfs.rag.bm25 import BM25, tokenize


def same_scores(corpus, queries, **params):
    ours, theirs = BM25(corpus, **params), BM25Okapi(corpus, **params)
    for q in queries:
        a, b = ours.get_scores(q), theirs.get_scores(q)
        assert a.shape == b.shape == (len(corpus),) and a.dtype == np.float64
        np.testing.assert_array_equal(a, b, err_msg=f"query {q}")
    return ours, theirs


@pytest.fixture(scope="module")
def genesis():
    return [tokenize(v) for v in kjv_verses()[:2000]]  # Genesis and most of Exodus


def test_tokenize_lowercases_words():
    assert tokenize("And Adam begat Seth; Seth's son: ENOS (v.6)") == ["and", "adam", "begat", "seth", "seth", "s",
                                                                      "son", "enos", "v", "6"]
    assert tokenize("") == []


def test_kjv_scores_equal_rank_bm25(genesis):
    queries = [tokenize(q) for q in ["who begat Enos", "In the beginning God created the heaven and the earth",
                                      "Noah ark flood waters", "Pharaoh Moses Aaron", "the the the lord",
                                      "xyzzy quux", ""]]
    ours, theirs = same_scores(genesis, queries)
    assert ours.idf == theirs.idf and ours.average_idf == theirs.average_idf and ours.avgdl == theirs.avgdl
    top = np.argsort(-ours.get_scores(tokenize("who begat Enos")))[:3]
    assert "enos" in genesis[top[0]]


def test_negative_idf_is_floored_at_epsilon_times_the_mean():
    # "a" is in 4 of 5 documents: its raw idf ln(1.5 / 4.5) < 0; "b" in 2, "z" in 1 (twice), "q" in none
    corpus = [["a", "b", "x"], ["a", "a", "a", "y"], ["a", "b"], ["a", "z", "z"], ["c"]]
    ours, theirs = same_scores(corpus, [["a"], ["a", "a"], ["z", "a"], ["b"], ["q"]])
    raw = math.log(5 - 4 + 0.5) - math.log(4 + 0.5)
    assert raw < 0 and ours.idf["a"] == pytest.approx(0.25 * ours.average_idf) and ours.idf["a"] > 0


def test_repeated_words_and_unknown_words():
    # 4 documents: "dog" and "bird" are in exactly half (idf ln(2.5 / 2.5) = 0, not floored), "cat" in 3 (floored)
    corpus = [["cat"] * 5 + ["dog"], ["cat", "dog", "dog"], ["bird"], ["cat", "bird", "fish", "fish"]]
    ours, _ = same_scores(corpus, [["cat", "cat"], ["dog", "nothing"], ["nothing"], []])
    np.testing.assert_array_equal(ours.get_scores(["cat", "cat"]), 2 * ours.get_scores(["cat"]))
    assert not ours.get_scores(["nothing", "else"]).any()


def test_empty_documents_and_other_parameters():
    corpus = [[], ["red", "apple"], ["green", "apple", "apple"], [], ["red", "car", "red"]]
    for params in (dict(k1=2.0, b=0.0), dict(b=0.99, epsilon=0.0), dict(k1=1.2, b=0.5, epsilon=1.0), dict(k1=1e-3)):
        same_scores(corpus, [["red", "apple"], ["apple"], ["car", "car"]], **params)
    same_scores([doc for doc in corpus if doc], [["red", "apple"]], b=1.0)


def test_where_rank_bm25_divides_zero_by_zero():
    """k1 = 0 (or b = 1 and an empty document) makes the denominator tf + k1 * (...) zero where tf = 0:
    rank_bm25 then scores NaN (and warns); ours gives 0, its limit, as a document without the word must get.
    With k1 = 0 a word adds its idf to each document that has it, however often."""
    corpus = [["red", "apple"], ["green", "apple", "apple"], ["red", "car", "red"], ["blue"], []]
    ours = BM25(corpus, k1=0.0)
    np.testing.assert_array_equal(ours.get_scores(["red"]), [ours.idf["red"], 0, ours.idf["red"], 0, 0])
    np.testing.assert_allclose(ours.get_scores(["red"]), BM25(corpus, k1=1e-12).get_scores(["red"]), atol=1e-9)
    assert BM25(corpus, b=1.0).get_scores(["red"])[4] == 0


@pytest.mark.parametrize("call, message", [
    (lambda: BM25([]), "non-empty list"),
    (lambda: BM25("a corpus"), "non-empty list"),
    (lambda: BM25([[], []]), "every document of the corpus is empty"),
    (lambda: BM25(["not tokenized"]), r"corpus\[0\] must be a list of str tokens.*tokenize it first"),
    (lambda: BM25([["a", 3]]), r"corpus\[0\] must be a list of str tokens"),
    (lambda: BM25([["a"]], k1=-1), "k1 must be a finite number"),
    (lambda: BM25([["a"]], k1=float("inf")), "k1 must be a finite number"),
    (lambda: BM25([["a"]], b=1.5), r"b must be a finite number in \[0.0, 1.0\]"),
    (lambda: BM25([["a"]], epsilon=float("nan")), "epsilon must be a finite number"),
    (lambda: BM25([["a"]]).get_scores("a query"), "tokenize it first"),
    (lambda: BM25([["a"]]).get_scores([1, 2]), "list of str tokens"),
])
def test_bad_input_is_a_clear_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tokenize_needs_a_str():
    with pytest.raises(TypeError, match="text must be a str"):
        tokenize(["a"])
