"""The search rules every vector-index backend shares (crmjobs.domain.search)."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path

import pytest

from crmjobs.adapters.vector_index.local import fts5_available
from crmjobs.domain.search import (
    STOP_WORDS,
    TITLE_BOOST,
    bm25_ranking,
    candidates_per_leg,
    query_terms,
    reciprocal_rank_fusion,
    stem,
    unit_vector,
    weighted_term_frequencies,
    word_tokens,
)

ROOT = Path(__file__).resolve().parents[2]


def test_reciprocal_rank_fusion_rewards_agreement_between_legs() -> None:
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["c", "d"]])

    assert [key for key, _ in fused] == ["c", "a", "b", "d"]  # b and d tie: id order
    assert fused[0][1] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61)
    assert fused[2][1] == fused[3][1] == pytest.approx(1 / 62)


def test_query_terms_drop_stop_words_and_repeats_and_split_on_punctuation() -> None:
    assert query_terms("How much does it COST? cost_per-seat, cost") == ["cost", "per", "seat"]
    assert query_terms("what is it") == []
    assert {"how", "does", "the"} <= STOP_WORDS


def test_tokens_keep_letters_and_digits_of_any_script() -> None:
    assert word_tokens("Zürich R5 €900 naïve") == ["zürich", "r5", "900", "naïve"]


def test_title_words_weigh_more_than_body_words_and_count_by_stem() -> None:
    frequencies = weighted_term_frequencies("Pricing", "priced tiers and prices")
    assert frequencies == {"price": TITLE_BOOST + 2, "tier": 1.0, "and": 1.0}


#: Porter's examples (1980), step by step, with his reference implementation's "bli" and
#: "logi" rules that Lucene's and SQLite's stemmers also follow.
PORTER_EXAMPLES = {
    "caresses": "caress", "ponies": "poni", "ties": "ti", "caress": "caress", "cats": "cat",
    "feed": "feed", "agreed": "agre", "plastered": "plaster", "bled": "bled",
    "motoring": "motor", "sing": "sing", "conflated": "conflat", "troubled": "troubl",
    "sized": "size", "hopping": "hop", "tanned": "tan", "falling": "fall", "hissing": "hiss",
    "fizzed": "fizz", "failing": "fail", "filing": "file", "happy": "happi", "sky": "sky",
    "relational": "relat", "conditional": "condit", "rational": "ration",
    "valenci": "valenc", "digitizer": "digit", "conformabli": "conform",
    "radicalli": "radic", "differentli": "differ", "vileli": "vile",
    "analogousli": "analog", "vietnamization": "vietnam", "predication": "predic",
    "operator": "oper", "feudalism": "feudal", "decisiveness": "decis",
    "hopefulness": "hope", "callousness": "callous", "formaliti": "formal",
    "sensitiviti": "sensit", "sensibiliti": "sensibl", "triplicate": "triplic",
    "formative": "form", "formalize": "formal", "electriciti": "electr",
    "electrical": "electr", "hopeful": "hope", "goodness": "good", "revival": "reviv",
    "allowance": "allow", "inference": "infer", "airliner": "airlin",
    "adjustable": "adjust", "defensible": "defens", "irritant": "irrit",
    "replacement": "replac", "adjustment": "adjust", "dependent": "depend",
    "adoption": "adopt", "communism": "commun", "activate": "activ", "effective": "effect",
    "bowdlerize": "bowdler", "probate": "probat", "rate": "rate", "cease": "ceas",
    "controll": "control", "roll": "roll", "generalizations": "gener",
    "oscillators": "oscil", "costs": "cost", "pricing": "price", "archaeology": "archaeolog",
}  # fmt: skip


def test_porter_stems() -> None:
    assert {word: stem(word) for word in PORTER_EXAMPLES} == PORTER_EXAMPLES
    assert [stem(word) for word in ("is", "r5", "zürich", "900")] == ["is", "r5", "zürich", "900"]


def test_stems_match_sqlite_fts5_porter_on_the_projects_own_words() -> None:
    """The local index's two keyword engines stem alike: this one and FTS5's tokenizer."""
    connection = sqlite3.connect(":memory:")
    if not fts5_available(connection):
        pytest.skip("this SQLite has no FTS5")
    texts = [ROOT / "README.md", *sorted((ROOT / "layers" / "common").rglob("*.py"))]
    found = {word for path in texts for word in re.findall(r"\b[a-z]{3,}\b", path.read_text())}
    # A word that is only a suffix keeps a letter in FTS5 ("ies" -> "ie"); Porter's rules,
    # like Lucene's stemmer, strip it.
    words = sorted(found - {"ies", "sses", "eed"})
    connection.execute("CREATE VIRTUAL TABLE words USING fts5(word, tokenize = 'porter ascii')")
    connection.execute("CREATE VIRTUAL TABLE stems USING fts5vocab(words, 'instance')")
    connection.executemany("INSERT INTO words (rowid, word) VALUES (?, ?)", enumerate(words))
    fts5 = dict(connection.execute("SELECT doc, term FROM stems").fetchall())
    assert len(words) > 2000
    assert {word: stem(word) for word in words} == {words[row]: term for row, term in fts5.items()}


def test_bm25_prefers_rare_terms_and_short_chunks() -> None:
    postings = [
        ("robot", "long", 1.0, 40),
        ("robot", "short", 1.0, 5),
        ("robot", "other", 1.0, 10),
        ("zanzibar", "other", 1.0, 10),
    ]
    ranked = bm25_ranking(postings, document_count=10, average_length=12.0, size=3)
    assert ranked == ["other", "short", "long"]  # the rare term, then length normalisation
    assert bm25_ranking(postings, document_count=10, average_length=12.0, size=1) == ["other"]
    assert bm25_ranking([], document_count=10, average_length=12.0, size=3) == []


def test_each_leg_fetches_more_than_k() -> None:
    assert candidates_per_leg(1) == 20 and candidates_per_leg(10) == 40


def test_query_vectors_are_unit_length_and_never_zero() -> None:
    assert math.isclose(sum(x * x for x in unit_vector([3.0, 4.0], 2)), 1.0)
    assert unit_vector([3.0, 4.0], 2) == [0.6, 0.8]
    with pytest.raises(ValueError, match="non-zero"):
        unit_vector([0.0, 0.0], 2)
    with pytest.raises(ValueError, match="dimension 3, the index expects 2"):
        unit_vector([1.0, 0.0, 0.0], 2)
