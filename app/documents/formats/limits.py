"""What reading one document may cost, and the writer that holds extraction to it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import PayloadTooLarge

if TYPE_CHECKING:
    from app.core.config import Settings


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """What one document may cost to read. A few KB of PDF or zip can expand to gigabytes,
    so every reader checks these before (archives) or while (text, rows, parts) it reads."""

    max_chars: int
    max_pdf_pages: int = 2_000
    max_zip_members: int = 10_000
    max_zip_bytes: int = 64 * 1024 * 1024
    max_zip_ratio: int = 100
    max_xml_tags: int = 1_000_000
    max_table_rows: int = 100_000
    max_table_columns: int = 1_000
    max_table_cells: int = 2_000_000
    max_email_parts: int = 500
    max_nesting_depth: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractionLimits:
        return cls(
            max_chars=settings.max_document_chars,
            max_pdf_pages=settings.max_pdf_pages,
            max_zip_members=settings.max_zip_members,
            max_zip_bytes=settings.max_zip_uncompressed_bytes,
            max_zip_ratio=settings.max_zip_ratio,
            max_xml_tags=settings.max_xml_tags,
            max_table_rows=settings.max_table_rows,
            max_table_columns=settings.max_table_columns,
            max_table_cells=settings.max_table_cells,
            max_email_parts=settings.max_email_parts,
            max_nesting_depth=settings.max_nesting_depth,
        )


def too_long(limits: ExtractionLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The document's text is longer than {limits.max_chars} characters (MAX_DOCUMENT_CHARS)."
    )


# A body line that would read as a Markdown heading is escaped, so only the headings the
# reader found (Word styles, slide titles, sheet names) become sections.
_HEADING_LIKE = re.compile(r"^(\s*)(#{1,6}\s)", re.MULTILINE)
_SPACES = re.compile(r"\s+")
MAX_HEADING_CHARS = 200


def one_line(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


class Writer:
    """Collects a document as Markdown-like text: `#` headings open sections, blocks are
    separated by blank lines. Raises `PayloadTooLarge` as soon as the text passes
    `max_chars`, so a small file that expands enormously stops early."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self._parts: list[str] = []
        self._size = 0

    def _add(self, block: str) -> None:
        self._size += len(block) + 2
        if self._size > self.limits.max_chars:
            raise too_long(self.limits)
        self._parts.append(block)

    def heading(self, level: int, text: str) -> None:
        title = one_line(text)[:MAX_HEADING_CHARS]
        if title:
            self._add(f"{'#' * max(1, min(level, 6))} {title}")

    def paragraph(self, text: str) -> None:
        text = text.strip()
        if text:
            self._add(_HEADING_LIKE.sub(r"\1\\\2", text))

    def markdown(self, text: str) -> None:
        """Text that is Markdown already (its headings are real)."""
        if text.strip():
            self._add(text.strip())

    def lines(self, lines: list[str]) -> None:
        """One block of lines kept apart (table rows, list items)."""
        self.paragraph("\n".join(line for line in lines if line.strip()))

    @property
    def size(self) -> int:
        return self._size

    def text(self) -> str:
        return "\n\n".join(self._parts)


def shift_headings(markdown: str, levels: int) -> str:
    """Nest a document's sections under another heading (an e-mail's attachment)."""

    def shift(match: re.Match[str]) -> str:
        return "#" * min(len(match.group(1)) + levels, 6) + " "

    return re.sub(r"^(#{1,6}) ", shift, markdown, flags=re.MULTILINE)
