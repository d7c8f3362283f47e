"""The rules of hybrid search that every vector-index backend applies alike.

A search runs a k-NN leg and a keyword leg within one workspace and fuses their rankings
by reciprocal rank. The keyword leg drops :data:`STOP_WORDS` from the query and weighs a
title match :data:`TITLE_BOOST` times a body match. Vectors are compared as unit vectors,
so an inner product is their cosine.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

RRF_RANK_CONSTANT = 60
"""The k of reciprocal rank fusion (Cormack, Clarke and Buettcher, 2009)."""

TITLE_BOOST = 2.0
"""Weight of a title match against a body match in the keyword leg."""

#: Words the keyword leg ignores: Lucene's English stop words plus the question and
#: helper words of the questions agents ask ("how much does it cost"), which would
#: otherwise rank any chunk that says "how" or "does". Every backend uses this one list.
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their"
    " then there these they this to was will with"
    " about can could did do does get has have how i me much many my our should"
    " what when where which who why would you your".split()
)

BM25_K1 = 1.2
BM25_B = 0.75

_WORD = re.compile(r"[^\W_]+")


def word_tokens(text: str) -> list[str]:
    """Lower-cased word tokens in text order, split like SQLite FTS5's unicode61."""
    return _WORD.findall(text.lower())


def query_terms(text: str) -> list[str]:
    """The words a query searches for: its tokens less stop words, first occurrence order."""
    return list(dict.fromkeys(term for term in word_tokens(text) if term not in STOP_WORDS))


def weighted_term_frequencies(title: str, text: str) -> dict[str, float]:
    """A chunk's term frequencies for the keyword leg: a title occurrence weighs
    TITLE_BOOST, a body occurrence 1."""
    frequencies: dict[str, float] = {}
    for token in word_tokens(title):
        frequencies[token] = frequencies.get(token, 0.0) + TITLE_BOOST
    for token in word_tokens(text):
        frequencies[token] = frequencies.get(token, 0.0) + 1.0
    return frequencies


def bm25_ranking(
    postings: Iterable[tuple[str, str, float, int]],
    document_count: int,
    average_length: float,
    size: int,
) -> list[str]:
    """Okapi BM25 (k1 1.2, b 0.75, Lucene's non-negative idf) over a workspace's chunks.

    ``postings`` are (term, chunk id, weighted frequency, chunk length in tokens) for the
    query's terms; returns up to ``size`` chunk ids, best first, ties by id.
    """
    postings = list(postings)
    document_frequency: dict[str, int] = {}
    for term, *_ in postings:
        document_frequency[term] = document_frequency.get(term, 0) + 1
    scores: dict[str, float] = {}
    for term, doc_id, frequency, length in postings:
        df = document_frequency[term]
        idf = math.log(1.0 + (document_count - df + 0.5) / (df + 0.5))
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * length / average_length)
        scores[doc_id] = scores.get(doc_id, 0.0) + idf * frequency * (BM25_K1 + 1) / (
            frequency + norm
        )
    ranked = sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))
    return [doc_id for doc_id, _ in ranked[:size]]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[str]], rank_constant: int = RRF_RANK_CONSTANT
) -> list[tuple[str, float]]:
    """Fuse ranked id lists: each id scores the sum of 1 / (rank_constant + rank).

    Best first; ties are broken by id so that every backend orders equal scores alike.
    """
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + 1.0 / (rank_constant + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


def candidates_per_leg(k: int) -> int:
    """How many hits each leg fetches: fusion needs more than k to re-rank well."""
    return max(4 * k, 20)


def unit_vector(vector: Sequence[float], dimension: int) -> list[float]:
    """The L2-normalised vector; rejects a wrong dimension and the zero vector."""
    if len(vector) != dimension:
        raise ValueError(f"vector has dimension {len(vector)}, the index expects {dimension}")
    norm = math.sqrt(math.fsum(float(x) * float(x) for x in vector))
    if norm == 0.0 or not math.isfinite(norm):
        raise ValueError("vector must be finite and non-zero")
    return [float(x) / norm for x in vector]
