"""Markdown markup out of text shown to people: extractive answers and source snippets.

Chunks keep their Markdown (an LLM reads it as structure, and the chunker needs the headings),
but a quoted answer or a snippet should read as text: `The guest network is called ...`, not
`# Office Wi-Fi The guest network is called ...`. Only line-level markers and unambiguous
inline markup are removed; `work_mem`, `2*3*4` and `a - b` are left as they are.
"""

from __future__ import annotations

import re

_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+|$)")
_CLOSING_HASHES = re.compile(r"[ \t]+#+[ \t]*$")
_QUOTE = re.compile(r"^ {0,3}(?:>[ \t]?)+")
_BULLET = re.compile(r"^[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
# Lines that are only markup: rules (---, ***), setext underlines (===), code fences.
_MARKUP_ONLY = re.compile(r"^[ \t]*(?:(?:[-*_=][ \t]*){3,}|```.*|~~~.*)$")
_IMAGE = re.compile(r"!\[([^\]\n]*)\]\([^)\n]*\)")
_LINK = re.compile(r"\[([^\]\n]+)\]\([^)\n]*\)")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])")
_UNDERSCORE_EMPHASIS = re.compile(r"(?<![\w_])_(?=[^\s_])([^_\n]+?)(?<=[^\s_])_(?![\w_])")
_CODE = re.compile(r"`+([^`\n]+?)`+")


def is_heading(line: str) -> bool:
    """An ATX heading line (`# Title`, `## 1. Scope`)."""
    return _HEADING.match(line) is not None


def _inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _CODE.sub(r"\1", text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS.sub(r"\1", text)
    return _UNDERSCORE_EMPHASIS.sub(r"\1", text)


def plain_line(line: str) -> str:
    """One line without its heading marker, quote marker, list bullet or inline markup."""
    if _MARKUP_ONLY.match(line):
        return ""
    line = _QUOTE.sub("", line)
    if is_heading(line):  # "# 1. Scope" keeps its number
        line = _CLOSING_HASHES.sub("", _HEADING.sub("", line))
    else:
        line = _BULLET.sub("", line)
    return _inline(line).strip()


def strip_markup(text: str, *, headings: bool = True) -> str:
    """`text` as plain lines (empty lines kept, so paragraphs stay apart); without
    `headings`, heading lines are left out altogether."""
    return "\n".join(
        plain_line(line) for line in text.split("\n") if headings or not is_heading(line)
    )
