"""Text helpers shared by chunking and prompting: sentences and a token estimate.

The estimate is dependency-free and close to WordPiece/BPE counts for English prose; exact
tokenizers differ per model, so budgets built on it keep a safety margin.
"""

from __future__ import annotations

import math
import re

_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
# Subword tokenizers split long words; ~4 characters per piece beyond the first piece.
_CHARS_PER_PIECE = 4


def count_tokens(text: str) -> int:
    total = 0
    for piece in _PIECE.findall(text):
        total += 1 if len(piece) <= 6 else math.ceil(len(piece) / _CHARS_PER_PIECE)
    return total


# A sentence ends at a line break, or at . ! ? (and closing quotes or brackets) followed by
# white space or the end: a point inside a token (4,100,000.50, facilities@example.com,
# v1.2.3, example.com/path) is not an end.
_BOUNDARY = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)|\n")
_PARAGRAPH = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []

    def add(piece: str) -> None:
        sentence = " ".join(piece.split())
        if sentence:
            sentences.append(sentence)

    for paragraph in _PARAGRAPH.split(text):
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            add(paragraph[start : match.end()])
            start = match.end()
        add(paragraph[start:])
    return sentences
