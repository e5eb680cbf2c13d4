"""Tables as text a retriever can match: every row carries its column headers."""

from __future__ import annotations

from collections.abc import Sequence

from app.documents.formats.limits import one_line


def render_table(rows: Sequence[Sequence[str]]) -> list[str]:
    """One line per row, `Header: value; Header: value`, the first non-empty row being the
    header. Empty rows and columns empty in every row are left out, as are a row's empty
    cells, so a question about one cell's row finds that row with its labels."""
    cleaned = [[one_line(cell) for cell in row] for row in rows]
    cleaned = [row for row in cleaned if any(cleaned_cell for cleaned_cell in row)]
    if not cleaned:
        return []
    width = max(len(row) for row in cleaned)
    used = [c for c in range(width) if any(c < len(row) and row[c] for row in cleaned)]
    table = [[row[c] if c < len(row) else "" for c in used] for row in cleaned]
    header, body = table[0], table[1:]
    if not body:
        return ["; ".join(cell for cell in header if cell)]
    labels = [label or f"Column {i + 1}" for i, label in enumerate(header)]
    lines = []
    for row in body:
        cells = [f"{label}: {cell}" for label, cell in zip(labels, row, strict=True) if cell]
        lines.append("; ".join(cells))
    return lines
