"""The search rules every vector-index backend shares (crmjobs.domain.search)."""

from __future__ import annotations

import math

import pytest

from crmjobs.domain.search import (
    STOP_WORDS,
    TITLE_BOOST,
    bm25_ranking,
    candidates_per_leg,
    query_terms,
    reciprocal_rank_fusion,
    unit_vector,
    weighted_term_frequencies,
    word_tokens,
)


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


def test_title_words_weigh_more_than_body_words() -> None:
    frequencies = weighted_term_frequencies("Pricing", "pricing tiers and pricing")
    assert frequencies == {"pricing": TITLE_BOOST + 2, "tiers": 1.0, "and": 1.0}


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
