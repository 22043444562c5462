"""Okapi BM25, the lexical retriever, on an inverted index: scores equal to ``rank_bm25.BM25Okapi``.

    bm25 = BM25([tokenize(doc) for doc in docs])        # k1=1.5, b=0.75, epsilon=0.25 as rank_bm25
    scores = bm25.get_scores(tokenize("who begat Enos"))  # (n_docs,) float64, higher is better
    top = np.argsort(-scores)[:10]

A document's score is a sum over the query's words (a word written twice counts twice):

    idf(w) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avg_len))

with ``tf`` the word's count in the document and ``idf(w) = ln((N - n_w + 0.5) / (n_w + 0.5))`` for a
word in ``n_w`` of the ``N`` documents. ``k1`` saturates repeats (the 10th "the" adds little), ``b``
discounts long documents. A word in more than half of the documents would get a *negative* idf;
rank_bm25 gives those words ``epsilon`` times the mean idf of the vocabulary instead (the mean taken
before this floor), and so do we. A word no document has adds nothing.

Only documents that contain a query word can score above zero, so the index keeps, for each word, the
list of documents that hold it and their precomputed term weights (its *postings*): a query touches its
words' postings only, not the whole corpus.
"""

from __future__ import annotations

import math
import numbers
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

WORD = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lower-case words (runs of letters, digits, underscores): 'And Adam begat Seth.' -> ['and', 'adam', 'begat', 'seth']."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return WORD.findall(text.lower())


def _check_tokens(name: str, tokens) -> None:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence) or not all(isinstance(t, str) for t in tokens):
        hint = ": tokenize it first, e.g. tokenize(text)" if isinstance(tokens, str) else ""
        raise ValueError(f"{name} must be a list of str tokens, got {type(tokens).__name__}{hint}")


def _check_number(name: str, value, low: float, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a finite number in [{low}, {high}], got {value!r}")
    return float(value)


class BM25:
    """BM25 over a tokenized corpus (a list of documents, each a list of str tokens)."""

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25):
        if isinstance(corpus, str) or not isinstance(corpus, Sequence) or not corpus:
            raise ValueError(f"corpus must be a non-empty list of tokenized documents, got {type(corpus).__name__}"
                             + (f" of length {len(corpus)}" if isinstance(corpus, Sequence) else ""))
        for i, doc in enumerate(corpus):
            _check_tokens(f"corpus[{i}]", doc)
        self.k1, self.b = _check_number("k1", k1, 0.0), _check_number("b", b, 0.0, 1.0)
        self.epsilon = _check_number("epsilon", epsilon, 0.0)
        self.doc_len = np.array([len(doc) for doc in corpus], dtype=np.float64)  # (N,)
        self.corpus_size, self.avgdl = len(corpus), float(self.doc_len.sum()) / len(corpus)
        if self.avgdl == 0:
            raise ValueError("every document of the corpus is empty: there is nothing to search")

        # postings: word -> (ids of the documents that hold it, its count in each), documents in order
        counts = [Counter(doc) for doc in corpus]
        docs_of: dict[str, list[int]] = {}
        tf_of: dict[str, list[int]] = {}
        for i, c in enumerate(counts):
            for word, tf in c.items():
                docs_of.setdefault(word, []).append(i)
                tf_of.setdefault(word, []).append(tf)

        n = self.corpus_size
        self.idf = {w: math.log(n - len(d) + 0.5) - math.log(len(d) + 0.5) for w, d in docs_of.items()}
        self.average_idf = sum(self.idf.values()) / len(self.idf)
        floor = self.epsilon * self.average_idf
        self.idf = {w: floor if v < 0 else v for w, v in self.idf.items()}

        # each posting's whole contribution, computed once: a query only adds them up
        norm = self.k1 * (1 - self.b + self.b * self.doc_len / self.avgdl)  # (N,) the length penalty
        self.postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for word, ids in docs_of.items():
            ids_a, tf = np.array(ids), np.array(tf_of[word], dtype=np.float64)
            self.postings[word] = ids_a, self.idf[word] * (tf * (self.k1 + 1) / (tf + norm[ids_a]))

    def get_scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """(N,) float64: the BM25 score of every document for the query (a list of tokens)."""
        _check_tokens("query_tokens", query_tokens)
        scores = np.zeros(self.corpus_size)
        for word in query_tokens:  # in order, repeats included: the same sums as rank_bm25's
            if word in self.postings:
                ids, weights = self.postings[word]
                scores[ids] += weights  # ids are distinct within one word's postings
        return scores
