"""Split a document into overlapping chunks of about 500 characters for embedding.

Rules (domain spec, "Document indexing"):

- A sentence ends at ``.``, ``!`` or ``?`` followed by whitespace or the end of the text
  (closing quotes or brackets right after the mark stay with the sentence), or at a blank
  line. Whitespace inside a sentence collapses to single spaces.
- Consecutive sentences are packed into chunks of about ``target`` characters and never
  more than ``maximum``. A sentence longer than ``maximum`` is split at word boundaries
  into pieces of at most ``target`` characters; a single word longer than ``maximum`` is
  cut into equal slices of at most ``maximum`` characters.
- Consecutive chunks overlap by one sentence: the last sentence of chunk *i* starts chunk
  *i + 1*, unless that sentence plus the next one would exceed ``maximum``.
- A last chunk shorter than ``min_tail`` characters is folded into the previous chunk when
  the result still fits in ``maximum``; otherwise it is kept as it is, so that no chunk
  ever exceeds ``maximum``.

Lengths are counted in Unicode code points after NFC normalisation. There is no cap on the
number of chunks.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata

_BLANK_LINE = re.compile(r"\n[^\S\n]*\n\s*")
# Two fixed-width look-behinds: a bare mark, or a mark followed by one closing quote/bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[.!?][\"')\]\u201d\u2019])\s+")


def normalize_content(content: str) -> str:
    """The text that chunking and hashing see: NFC, paragraphs kept, other whitespace collapsed."""
    paragraphs = _BLANK_LINE.split(unicodedata.normalize("NFC", content))
    collapsed = (" ".join(paragraph.split()) for paragraph in paragraphs)
    return "\n\n".join(paragraph for paragraph in collapsed if paragraph)


def content_hash(content: str) -> str:
    """SHA-256 hex digest of the normalised content; whitespace-only edits keep the hash."""
    return hashlib.sha256(normalize_content(content).encode("utf-8")).hexdigest()


def split_sentences(content: str) -> list[str]:
    """The document's sentences, whitespace-normalised, in order."""
    sentences: list[str] = []
    for paragraph in normalize_content(content).split("\n\n"):
        sentences.extend(part for part in _SENTENCE_END.split(paragraph) if part)
    return sentences


def chunk_text(
    content: str, *, target: int = 500, maximum: int = 700, min_tail: int = 100
) -> list[str]:
    """Chunks of the content per the module rules; empty or whitespace-only content gives []."""
    if not 0 < target <= maximum:
        raise ValueError(f"need 0 < target <= maximum, got target={target} maximum={maximum}")
    units: list[str] = []
    for sentence in split_sentences(content):
        if len(sentence) <= maximum:
            units.append(sentence)
        else:
            units.extend(_split_long_sentence(sentence, target=target, maximum=maximum))
    chunks = _pack(units, target=target, maximum=maximum)
    return _fold_short_tail(chunks, maximum=maximum, min_tail=min_tail)


def _split_long_sentence(sentence: str, *, target: int, maximum: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for word in sentence.split(" "):
        if len(word) > maximum:
            if current:
                pieces.append(current)
                current = ""
            pieces.extend(_hard_split(word, maximum))
        elif not current:
            current = word
        elif len(current) + 1 + len(word) <= target:
            current = f"{current} {word}"
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _hard_split(word: str, maximum: int) -> list[str]:
    """Equal slices, so a 701-character word gives 351 + 350 rather than 700 + 1."""
    slice_count = math.ceil(len(word) / maximum)
    size = math.ceil(len(word) / slice_count)
    return [word[start : start + size] for start in range(0, len(word), size)]


class _Chunk:
    """Sentences of one chunk; ``first_new`` is the index of the first non-overlap sentence."""

    def __init__(self, units: list[str], first_new: int) -> None:
        self.units = units
        self.first_new = first_new
        self.length = _joined_length(units)

    def add(self, unit: str) -> None:
        self.length += len(unit) + (1 if self.units else 0)
        self.units.append(unit)

    def text(self) -> str:
        return " ".join(self.units)


def _joined_length(units: list[str]) -> int:
    return sum(len(unit) for unit in units) + max(len(units) - 1, 0)


def _pack(units: list[str], *, target: int, maximum: int) -> list[_Chunk]:
    """Greedy packing: a sentence joins the chunk while that moves its length towards target."""
    chunks: list[_Chunk] = []
    index = 0
    while index < len(units):
        current = _Chunk([], 0)
        if chunks:
            overlap = chunks[-1].units[-1]
            if len(overlap) + 1 + len(units[index]) <= maximum:
                current = _Chunk([overlap], 1)
        current.add(units[index])
        index += 1
        while index < len(units):
            grown = current.length + 1 + len(units[index])
            if grown > maximum or abs(grown - target) >= abs(current.length - target):
                break
            current.add(units[index])
            index += 1
        chunks.append(current)
    return chunks


def _fold_short_tail(chunks: list[_Chunk], *, maximum: int, min_tail: int) -> list[str]:
    if len(chunks) >= 2 and chunks[-1].length < min_tail:
        tail, previous = chunks[-1], chunks[-2]
        new_units = tail.units[tail.first_new :]
        if previous.length + 1 + _joined_length(new_units) <= maximum:
            for unit in new_units:
                previous.add(unit)
            chunks.pop()
    return [chunk.text() for chunk in chunks]
