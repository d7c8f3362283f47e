import hashlib
import random

import pytest

from crmjobs.domain.chunking import (
    chunk_text,
    content_hash,
    normalize_content,
    split_sentences,
)

WORDS = (
    "lead pipeline quarter renewal contract onboarding invoice churn forecast meeting "
    "follow-up discount proposal stakeholder budget timeline integration support"
).split()


def make_sentence(rng: random.Random, min_words: int = 3, max_words: int = 30) -> str:
    words = rng.choices(WORDS, k=rng.randint(min_words, max_words))
    return " ".join(words).capitalize() + rng.choice(".!?")


def assert_sentences_in_order(sentences: list[str], chunks: list[str]) -> None:
    """Each sentence is found in a chunk, at or after where the previous one was found."""
    chunk_index, position = 0, 0
    for sentence in sentences:
        while chunk_index < len(chunks):
            found = chunks[chunk_index].find(sentence, position)
            if found >= 0:
                position = found + len(sentence)
                break
            chunk_index, position = chunk_index + 1, 0
        else:
            pytest.fail(f"sentence missing or out of order: {sentence!r}")


def overlap_sentence(previous: str, following: str) -> str | None:
    """The last sentence of `previous` if `following` starts with it."""
    last = split_sentences(previous)[-1]
    return last if following.startswith(last + " ") else None


@pytest.mark.parametrize("content", ["", "   ", "\n\n\t \n"])
def test_empty_or_whitespace_content_has_no_chunks(content):
    assert chunk_text(content) == []


def test_short_document_is_one_normalised_chunk():
    assert chunk_text("  Hello   there.\tHow are\nyou?  ") == ["Hello there. How are you?"]


def test_sentence_ends_need_whitespace_after_the_mark():
    assert split_sentences('Pi is 3.14 today. See www.example.com now! He said "yes." Done?') == [
        "Pi is 3.14 today.",
        "See www.example.com now!",
        'He said "yes."',
        "Done?",
    ]


def test_blank_line_ends_a_sentence_but_a_single_newline_does_not():
    content = "First paragraph without a full stop\n\n  \nSecond one wraps\nonto two lines"
    assert split_sentences(content) == [
        "First paragraph without a full stop",
        "Second one wraps onto two lines",
    ]


def test_sentence_over_the_maximum_is_split_at_word_boundaries():
    words = [f"word{number:03d}" for number in range(200)]  # 1,599 characters
    long_sentence = " ".join(words) + "."
    chunks = chunk_text(long_sentence)
    assert len(chunks) >= 3
    assert all(len(chunk) <= 700 for chunk in chunks)
    # Word boundaries are kept: chunks are made of whole words, and every word appears in order.
    assert all(set(chunk.split(" ")) <= set(long_sentence.split(" ")) for chunk in chunks)
    assert_sentences_in_order(long_sentence.split(" "), chunks)


def test_word_over_the_maximum_is_cut_into_equal_slices():
    assert chunk_text("x" * 1500) == ["x" * 500] * 3
    # 1,401 characters make three slices of 467: "Token: " + slice, slice, slice + " end."
    chunks = chunk_text(f"Token: {'y' * 1401} end.")
    assert [len(chunk) for chunk in chunks] == [474, 467, 472]
    assert "".join(chunks).count("y") == 1401


def test_consecutive_chunks_overlap_by_one_sentence():
    rng = random.Random(7)
    sentences = [make_sentence(rng, 8, 14) for _ in range(30)]
    chunks = chunk_text(" ".join(sentences))
    assert len(chunks) > 3
    for previous, following in zip(chunks, chunks[1:], strict=False):
        shared = overlap_sentence(previous, following)
        assert shared is not None and shared in sentences


def test_no_overlap_when_the_shared_sentence_would_break_the_maximum():
    first = "A" + " lorem" * 110 + "."  # 662 characters
    second = "B" + " ipsum" * 100 + "."  # 602 characters
    assert chunk_text(f"{first} {second}") == [first, second]


def lead_sentences(count: int) -> list[str]:
    """Distinct 49-character sentences: ten of them pack to exactly 499 characters."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    return [
        f"Sentence {letter} is about the lead pipeline review now." for letter in letters[:count]
    ]


def test_tiny_tail_joins_the_previous_chunk_when_it_fits():
    # "Ok." would move a 499-character chunk away from the 500 target, so packing starts a
    # 53-character tail chunk (overlap sentence + "Ok.") that then folds back.
    body = " ".join(lead_sentences(10))
    assert len(body) == 499
    content = f"{body} Ok."
    assert chunk_text(content) == [content]
    # 37 sentences: 10 in the first chunk, then 9 new ones per chunk after the overlap.
    chunks = chunk_text(" ".join(lead_sentences(37)) + " Ok.")
    assert len(chunks) == 4
    assert chunks[-1].endswith("now. Ok.")
    assert all(len(chunk) >= 100 for chunk in chunks)


def test_tiny_tail_is_kept_when_joining_would_break_the_maximum():
    near_max = "Alpha" + " bravo" * 114 + "."  # 690 characters
    chunks = chunk_text(f"{near_max} Short tail.")
    assert chunks == [near_max, "Short tail."]


def test_lengths_are_characters_for_cjk_emoji_and_accents():
    cjk = "这是一个关于客户关系管理的句子。" * 60  # no spaces, no ASCII full stop
    emoji_sentences = [
        f"Deal {number} closed 🎉🚀 with the café in Zürich!" for number in range(40)
    ]
    chunks = chunk_text(cjk + "\n\n" + " ".join(emoji_sentences))
    assert all(len(chunk) <= 700 for chunk in chunks)
    assert "".join(chunks).count("这是一个关于客户关系管理的句子。") >= 60
    assert_sentences_in_order(emoji_sentences, chunks)
    assert any("🎉🚀" in chunk and "Zürich" in chunk for chunk in chunks)


def test_decomposed_accents_are_normalised_to_composed_form():
    decomposed = "Cafe\u0301 au lait."
    assert chunk_text(decomposed) == ["Café au lait."]
    assert content_hash(decomposed) == content_hash("Café au lait.")


@pytest.mark.parametrize("seed", range(25))
def test_invariants_over_random_text(seed):
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(rng.randint(1, 6)):
        sentences = [make_sentence(rng, 1, 60) for _ in range(rng.randint(1, 25))]
        paragraphs.append(rng.choice([" ", "  ", "\n", " \t "]).join(sentences))
    content = rng.choice(["\n\n", "\n \n\n"]).join(paragraphs)

    chunks = chunk_text(content)

    assert chunks
    assert all(0 < len(chunk) <= 700 for chunk in chunks)
    assert_sentences_in_order(split_sentences(content), chunks)


def test_two_hundred_sentence_document_is_not_capped_at_twenty_chunks():
    rng = random.Random(11)
    content = " ".join(make_sentence(rng) for _ in range(200))
    chunks = chunk_text(content)
    assert len(chunks) > 20
    average = sum(len(chunk) for chunk in chunks) / len(chunks)
    assert 400 <= average <= 600


def test_content_hash_is_sha256_of_the_normalised_content():
    content = "  Hello   world.\n\n\n  Next paragraph.  "
    assert normalize_content(content) == "Hello world.\n\nNext paragraph."
    expected = hashlib.sha256(b"Hello world.\n\nNext paragraph.").hexdigest()
    assert content_hash(content) == expected
    assert content_hash("Hello world. Next paragraph.") != expected


def test_invalid_sizes_are_rejected():
    with pytest.raises(ValueError):
        chunk_text("Some text.", target=800, maximum=700)
