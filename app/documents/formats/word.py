"""Word (.docx) with python-docx: heading styles become sections, list paragraphs stay
items, tables become rows that carry their headers. Body order is kept (paragraphs and
tables interleaved)."""

from __future__ import annotations

import io
import re

from app.core.errors import PayloadTooLarge
from app.documents.formats.archive import open_zip
from app.documents.formats.limits import ExtractionLimits, Writer
from app.documents.formats.tables import render_table

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
KIND = "Word document"


def _heading_level(style: object) -> int | None:
    """The level of a heading style, or of the heading style it is based on (custom
    styles built on "Heading 2" are headings too)."""
    for _ in range(4):
        if style is None:
            return None
        name = str(getattr(style, "name", "") or "")
        if name.lower() == "title":
            return 1
        match = _HEADING_STYLE.match(name)
        if match:
            return min(int(match.group(1)), 6)
        style = getattr(style, "base_style", None)
    return None


def _list_depth(paragraph: object) -> int | None:
    p_pr = getattr(getattr(paragraph, "_p", None), "pPr", None)
    num_pr = getattr(p_pr, "numPr", None)
    if num_pr is not None:
        ilvl = getattr(num_pr, "ilvl", None)
        value = getattr(ilvl, "val", 0) if ilvl is not None else 0
        return int(value or 0)
    name = str(getattr(getattr(paragraph, "style", None), "name", "") or "")
    return 0 if name.lower().startswith("list") else None


def _row_cells(row: object) -> list[str]:
    """A row's cell texts, a merged cell once (python-docx repeats it per grid column)."""
    seen: set[int] = set()
    texts: list[str] = []
    for cell in getattr(row, "cells", ()):
        key = id(cell._tc)
        if key in seen:
            continue
        seen.add(key)
        texts.append(cell.text)
    return texts


def extract_docx(data: bytes, limits: ExtractionLimits) -> str:
    open_zip(data, limits, KIND).close()
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    writer = Writer(limits)
    items: list[str] = []

    def flush_items() -> None:
        if items:
            writer.lines(items)
            items.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = block.text.strip()
            if not text:
                continue
            level = _heading_level(block.style)
            depth = None if level is not None else _list_depth(block)
            if depth is not None:
                items.append(f"{'  ' * min(depth, 8)}- {text}")
                continue
            flush_items()
            if level is not None:
                writer.heading(level, text)
            else:
                writer.paragraph(text)
        elif isinstance(block, Table):
            flush_items()
            rows = [_row_cells(row) for row in block.rows]
            if len(rows) > limits.max_table_rows:
                raise PayloadTooLarge(
                    f"A table has {len(rows)} rows; at most {limits.max_table_rows} are "
                    "accepted (MAX_TABLE_ROWS)."
                )
            writer.lines(render_table(rows))
    flush_items()
    return writer.text()
