"""A dependency-free token estimate, close to WordPiece/BPE counts for English prose.

Exact tokenizers differ per model; budgets built on this estimate keep a safety margin.
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
