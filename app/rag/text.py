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


_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|\n+|$)")
_PARAGRAPH = re.compile(r"\n\s*\n")


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        for match in _SENTENCE.finditer(paragraph):
            sentence = " ".join(match.group(0).split())
            if sentence:
                sentences.append(sentence)
    return sentences
