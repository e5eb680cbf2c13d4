"""Word (.docx) with python-docx: heading styles become sections, list paragraphs stay
items, tables become rows that carry their headers. Body order is kept (paragraphs and
tables interleaved)."""

from __future__ import annotations

import io
import re
from typing import Any

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


class _Styles:
    """Heading level and list-ness per paragraph style id, worked out once per style:
    python-docx's `paragraph.style` scans every style for each paragraph (4 ms each on a
    document with the default styles, quadratic in effect)."""

    def __init__(self, document: Any) -> None:
        from docx.enum.style import WD_STYLE_TYPE

        self._by_id: dict[str, tuple[int | None, bool]] = {}
        for style in document.styles:
            if style.type == WD_STYLE_TYPE.PARAGRAPH:
                name = str(style.name or "").lower()
                self._by_id[style.style_id] = (_heading_level(style), name.startswith("list"))
        default = document.styles.default(WD_STYLE_TYPE.PARAGRAPH)
        self.default = (
            self._by_id.get(default.style_id, (None, False)) if default else (None, False)
        )

    def of(self, paragraph: Any) -> tuple[int | None, int | None]:
        """(heading level, list depth) of a paragraph; None where it is not one."""
        p_pr = paragraph._p.pPr
        style_id = p_pr.style if p_pr is not None else None
        level, is_list = self._by_id.get(style_id, self.default) if style_id else self.default
        num_pr = p_pr.numPr if p_pr is not None else None
        if level is not None:
            return level, None
        if num_pr is not None:
            ilvl = num_pr.ilvl
            return None, int(ilvl.val or 0) if ilvl is not None else 0
        return None, 0 if is_list else None


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_RUN, _TEXT, _TAB, _BREAKS = f"{_W}r", f"{_W}t", f"{_W}tab", (f"{_W}br", f"{_W}cr")
# Run containers of a paragraph whose text reads as the paragraph's (links, tracked
# insertions, smart tags, simple fields); deletions and text boxes are not.
_RUN_HOLDERS = frozenset(f"{_W}{tag}" for tag in ("hyperlink", "ins", "smartTag", "fldSimple"))


def paragraph_text(p: Any) -> str:
    """A `w:p` element's text, as python-docx's `Paragraph.text` gives it, by walking the
    tree: `Paragraph.text` runs an XPath query per paragraph and run, most of the time
    spent on a long document."""
    parts: list[str] = []
    for child in p:
        runs = (
            [child] if child.tag == _RUN else child.iter(_RUN) if child.tag in _RUN_HOLDERS else ()
        )
        for run in runs:
            for item in run:
                if item.tag == _TEXT:
                    parts.append(item.text or "")
                elif item.tag == _TAB:
                    parts.append("\t")
                elif item.tag in _BREAKS:
                    parts.append("\n")
    return "".join(parts)


def _row_cells(row: object) -> list[str]:
    """A row's cell texts, a merged cell once (python-docx repeats it per grid column)."""
    seen: set[int] = set()
    texts: list[str] = []
    for cell in getattr(row, "cells", ()):
        key = id(cell._tc)
        if key in seen:
            continue
        seen.add(key)
        texts.append("\n".join(paragraph_text(p) for p in cell._tc.iterchildren(f"{_W}p")))
    return texts


def extract_docx(data: bytes, limits: ExtractionLimits) -> str:
    open_zip(data, limits, KIND).close()
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(io.BytesIO(data))
    writer = Writer(limits)
    styles = _Styles(document)
    items: list[str] = []

    def flush_items() -> None:
        if items:
            writer.lines(items)
            items.clear()

    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            text = paragraph_text(block._p).strip()
            if not text:
                continue
            level, depth = styles.of(block)
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
