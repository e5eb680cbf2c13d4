"""Sentence-respecting chunking with a token budget and an overlap."""

from __future__ import annotations

from collections.abc import Callable

from app.rag.text import count_tokens, split_sentences


def _split_long(sentence: str, max_tokens: int, count: Callable[[str], int]) -> list[str]:
    """A sentence over the budget is cut between words."""
    parts: list[str] = []
    words: list[str] = []
    for word in sentence.split():
        if words and count(" ".join([*words, word])) > max_tokens:
            parts.append(" ".join(words))
            words = []
        words.append(word)
    if words:
        parts.append(" ".join(words))
    return parts


def chunk_text(
    text: str,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    count: Callable[[str], int] = count_tokens,
) -> list[str]:
    """Pack whole sentences into chunks of at most `max_tokens`; each chunk starts with the
    last sentences of the previous one, up to `overlap_tokens`, so no fact is cut off from
    its context. Sentences are joined by newlines, so headings and list items stay apart."""
    units: list[tuple[str, int]] = []
    for sentence in split_sentences(text):
        tokens = count(sentence)
        if tokens <= max_tokens:
            units.append((sentence, tokens))
        else:
            units.extend((part, count(part)) for part in _split_long(sentence, max_tokens, count))

    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    size = 0
    for unit in units:
        if current and size + unit[1] > max_tokens:
            chunks.append("\n".join(s for s, _ in current))
            carried: list[tuple[str, int]] = []
            carried_size = 0
            for previous in reversed(current):
                if carried_size + previous[1] > overlap_tokens or (
                    carried_size + previous[1] + unit[1] > max_tokens
                ):
                    break
                carried.insert(0, previous)
                carried_size += previous[1]
            current, size = carried, carried_size
        current.append(unit)
        size += unit[1]
    if current:
        chunks.append("\n".join(s for s, _ in current))
    return chunks
