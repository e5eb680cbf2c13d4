"""Sentence-respecting chunking with a token budget and an overlap."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

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


def _units(text: str, sections: bool) -> list[str]:
    if not sections:
        return split_sentences(text)
    # A heading is one unit however it reads ("# 1. Scope" is not two sentences).
    units: list[str] = []
    for line in text.split("\n"):
        if _heading(line) is not None:
            units.append(" ".join(line.split()))
        else:
            units.extend(split_sentences(line))
    return units


def chunk_text(
    text: str,
    *,
    max_tokens: int = 200,
    overlap_tokens: int = 40,
    count: Callable[[str], int] = count_tokens,
    sections: bool = False,
) -> list[str]:
    """Pack whole sentences into chunks of at most `max_tokens`; each chunk starts with the
    last sentences of the previous one, up to `overlap_tokens`, so no fact is cut off from
    its context. Sentences are joined by newlines, so headings and list items stay apart.

    With `sections`, a Markdown heading line (a Word heading, a slide, a sheet) closes the
    chunk before it and nothing is carried over it: a chunk never spans two sections.
    Consecutive headings stay together with the content that follows them."""
    units: list[tuple[str, int, bool]] = []
    for sentence in _units(text, sections):
        tokens = count(sentence)
        heading = sections and _heading(sentence) is not None
        if tokens <= max_tokens:
            units.append((sentence, tokens, heading))
        else:
            units.extend(
                (part, count(part), heading) for part in _split_long(sentence, max_tokens, count)
            )

    chunks: list[str] = []
    current: list[tuple[str, int, bool]] = []
    size = 0
    for unit in units:
        if unit[2] and any(not is_heading for _, _, is_heading in current):
            chunks.append("\n".join(s for s, _, _ in current))
            current, size = [], 0
        elif current and size + unit[1] > max_tokens:
            chunks.append("\n".join(s for s, _, _ in current))
            carried: list[tuple[str, int, bool]] = []
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
        chunks.append("\n".join(s for s, _, _ in current))
    return chunks


_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
HEADING_SEPARATOR = " > "
TITLE_SEPARATOR = " — "
# The vector stores' title column.
MAX_SOURCE_TITLE_CHARS = 500


def _heading(line: str) -> tuple[int, str] | None:
    match = _HEADING.match(line)
    return (len(match.group(1)), match.group(2)) if match else None


def markdown_headings(chunks: Sequence[str]) -> list[str]:
    """For each chunk of a markdown text, the path of the section it starts in
    ("Setup > Linux"). Neighbours share their overlap, so a chunk's opening lines are located
    in the previous chunk and the headings are those in force there."""
    headings: list[str] = []
    previous: list[str] = []
    previous_states: list[tuple[tuple[int, str], ...]] = []
    for chunk in chunks:
        lines = chunk.split("\n")
        overlap = next(
            (m for m in range(min(len(lines), len(previous)), 0, -1) if lines[:m] == previous[-m:]),
            0,
        )
        stack = previous_states[len(previous) - overlap] if previous_states else ()
        states: list[tuple[tuple[int, str], ...]] = []
        at_content: tuple[tuple[int, str], ...] | None = None
        for line in lines:
            states.append(stack)
            if (found := _heading(line)) is not None:
                level = found[0]
                stack = (*(h for h in stack if h[0] < level), found)
            elif at_content is None:
                at_content = stack
        states.append(stack)
        headings.append(HEADING_SEPARATOR.join(h[1] for h in (at_content or stack)))
        previous, previous_states = lines, states
    return headings


def source_title(title: str, heading: str) -> str:
    """The title a chunk is cited by: the document's, then the section it is from
    ("Q3 report — Revenue > EMEA"), so a source names the heading, slide or sheet."""
    names = {title.strip().casefold(), title.rsplit(".", 1)[0].strip().casefold()}
    # A heading that repeats the document's title ("# Handbook" in handbook.md) says nothing.
    parts = [
        part.strip()
        for part in heading.split(HEADING_SEPARATOR)
        if part.strip() and part.strip().casefold() not in names
    ]
    label = f"{title}{TITLE_SEPARATOR}{HEADING_SEPARATOR.join(parts)}" if parts else title
    return label[:MAX_SOURCE_TITLE_CHARS]


def embedding_text(title: str, heading: str, text: str) -> str:
    """What is embedded (and indexed) for a chunk: its text under its document title and
    section heading, so a chunk that says "it" still carries what it is about. The stored,
    displayed text stays the chunk itself."""
    parts = [title.strip()] if title.strip() else []
    parts += [h for h in heading.split(HEADING_SEPARATOR) if h.strip() and h.strip() not in parts]
    label = TITLE_SEPARATOR.join(parts)
    return f"{label}\n{text}" if label else text
