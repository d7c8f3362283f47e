"""The rules of hybrid search that every vector-index backend applies alike.

A search runs a k-NN leg and a keyword leg within one workspace and fuses their rankings
by reciprocal rank. The keyword leg drops :data:`STOP_WORDS` from the query, matches words
by their Porter stem ("costs" finds "cost") and weighs a title match :data:`TITLE_BOOST`
times a body match. Vectors are compared as unit vectors,
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
    """A chunk's frequencies by Porter stem for the keyword leg: a title occurrence weighs
    TITLE_BOOST, a body occurrence 1."""
    frequencies: dict[str, float] = {}
    for token in word_tokens(title):
        frequencies[stem(token)] = frequencies.get(stem(token), 0.0) + TITLE_BOOST
    for token in word_tokens(text):
        frequencies[stem(token)] = frequencies.get(stem(token), 0.0) + 1.0
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


# --------------------------------------------------------------------------- stemming
# Porter's algorithm (1980) with the two changes of his reference implementation that
# Lucene's PorterStemFilter (OpenSearch's "porter") and SQLite FTS5's porter tokenizer
# also make: "bli" -> "ble" (for "abli" -> "able") and "logi" -> "log" in step 2.

_VOWELS = frozenset("aeiou")


def _is_consonant(word: str, index: int) -> bool:
    letter = word[index]
    if letter in _VOWELS:
        return False
    if letter == "y":
        return index == 0 or not _is_consonant(word, index - 1)
    return True


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: how many vowel-consonant sequences the stem has."""
    count, previous_vowel = 0, False
    for index in range(len(stem)):
        consonant = _is_consonant(stem, index)
        if consonant and previous_vowel:
            count += 1
        previous_vowel = not consonant
    return count


def _has_vowel(stem: str) -> bool:
    return any(not _is_consonant(stem, index) for index in range(len(stem)))


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _is_consonant(word, len(word) - 1)


def _ends_cvc(word: str) -> bool:
    """Consonant-vowel-consonant at the end, the last not w, x or y ("hop", not "snow")."""
    return (
        len(word) >= 3
        and _is_consonant(word, len(word) - 3)
        and not _is_consonant(word, len(word) - 2)
        and _is_consonant(word, len(word) - 1)
        and word[-1] not in "wxy"
    )


def _replace(word: str, rules: Sequence[tuple[str, str]], minimum_measure: int) -> str:
    """The first rule whose suffix ends the word applies if the stem's measure exceeds
    `minimum_measure`; later rules are not tried either way."""
    for suffix, replacement in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if _measure(stem) > minimum_measure else word
    return word


_STEP2 = (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"),
    ("izer", "ize"), ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"),
    ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"), ("ator", "ate"),
    ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"),
    ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"),
)  # fmt: skip
_STEP3 = (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"),
    ("ful", ""), ("ness", ""),
)  # fmt: skip
_STEP4 = (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion",
    "ou", "ism", "ate", "iti", "ous", "ive", "ize",
)  # fmt: skip


def stem(word: str) -> str:
    """The Porter stem of a lower-case word ("costs" -> "cost", "pricing" -> "price");
    words of one or two letters, and words with characters other than a-z, as they are."""
    if len(word) <= 2 or not word.isascii() or not word.isalpha():
        return word
    # Step 1a: plurals.
    if word.endswith("sses") or word.endswith("ies"):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    # Step 1b: -eed, -ed, -ing.
    if word.endswith("eed"):
        if _measure(word[:-3]) > 0:
            word = word[:-1]
    else:
        for suffix in ("ed", "ing"):
            if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
                word = word[: -len(suffix)]
                if word.endswith(("at", "bl", "iz")):
                    word += "e"
                elif _ends_double_consonant(word) and word[-1] not in "lsz":
                    word = word[:-1]
                elif _measure(word) == 1 and _ends_cvc(word):
                    word += "e"
                break
    # Step 1c: -y after a vowel-bearing stem.
    if word.endswith("y") and _has_vowel(word[:-1]):
        word = word[:-1] + "i"
    word = _replace(word, _STEP2, 0)
    word = _replace(word, _STEP3, 0)
    # Step 4: suffixes dropped when the stem's measure is over 1 (-ion after s or t only).
    for suffix in _STEP4:
        if word.endswith(suffix):
            stem_ = word[: -len(suffix)]
            if _measure(stem_) > 1 and (suffix != "ion" or stem_.endswith(("s", "t"))):
                word = stem_
            break
    # Step 5: a final -e, a final double l.
    if word.endswith("e"):
        base = word[:-1]
        if _measure(base) > 1 or (_measure(base) == 1 and not _ends_cvc(base)):
            word = base
    if word.endswith("ll") and _measure(word) > 1:
        word = word[:-1]
    return word
