"""Excel (.xlsx) with openpyxl, and CSV/TSV with the standard library: one section per
sheet, every row with its column headers, values as the sheet shows them (number
formats applied), empty rows and columns left out.

openpyxl's read-only mode streams rows, but pads each row to the sheet's declared width
and fills gaps between rows: the declared dimension is checked first, then ignored, and
rows are read counting the empty ones too, so a sheet of a million
styled empty rows is refused after MAX_TABLE_ROWS rows, not read to its end.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Sequence
from typing import IO

from app.core.errors import InvalidInput, PayloadTooLarge
from app.documents.formats.archive import open_zip
from app.documents.formats.limits import ExtractionLimits, Writer
from app.documents.formats.numfmt import format_cell
from app.documents.formats.tables import render_table

KIND = "Excel workbook"


def _too_many_rows(limits: ExtractionLimits, where: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{where} has more than {limits.max_table_rows} rows (empty ones included); at most "
        f"{limits.max_table_rows} are accepted (MAX_TABLE_ROWS)."
    )


def _too_many_columns(limits: ExtractionLimits, where: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{where} has more than {limits.max_table_columns} columns (MAX_TABLE_COLUMNS)."
    )


class _RowBudget:
    """Rows read across the whole document, empty ones included."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.rows = 0
        self.chars = 0

    def take(self, where: str, cells: Sequence[str]) -> None:
        self.rows += 1
        if self.rows > self.limits.max_table_rows:
            raise _too_many_rows(self.limits, where)
        self.chars += sum(len(c) + 4 for c in cells)
        if self.chars > self.limits.max_chars:
            raise PayloadTooLarge(
                f"The document's text is longer than {self.limits.max_chars} characters "
                "(MAX_DOCUMENT_CHARS)."
            )


_ROOT = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?worksheet[\s>]")


class _SheetCounter:
    """Rows and cells of the worksheets, counted in their XML with `bytes.count` before
    openpyxl builds an object per cell; stops reading as soon as a ceiling is passed."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.rows = 0
        self.cells = 0

    def _check(self) -> None:
        if self.rows > self.limits.max_table_rows:
            raise _too_many_rows(self.limits, "The workbook")
        if self.cells > self.limits.max_table_cells:
            raise PayloadTooLarge(
                f"The workbook has more than {self.limits.max_table_cells} cells (empty styled "
                f"ones included); at most {self.limits.max_table_cells} are accepted "
                "(MAX_TABLE_CELLS)."
            )

    def _count(self, block: bytes, prefix: bytes) -> None:
        row, cell = b"<" + prefix + b"row", b"<" + prefix + b"c"
        self.rows += sum(block.count(row + end) for end in (b" ", b">", b"/"))
        self.cells += sum(block.count(cell + end) for end in (b" ", b">", b"/"))

    def sheet(self, member: IO[bytes]) -> None:
        tail, prefix = b"", None
        while chunk := member.read(1 << 20):
            block = tail + chunk
            if prefix is None:
                root = _ROOT.search(block)
                prefix = (root.group(1) + b":") if root and root.group(1) else b""
            # Every tag starts with "<" and holds no other: none spans the cut.
            cut = block.rfind(b"<")
            cut = len(block) if cut <= 0 else cut
            self._count(block[:cut], prefix)
            self._check()
            tail = block[cut:]
        self._count(tail, prefix or b"")
        self._check()


def _count_rows_and_cells(archive: zipfile.ZipFile, limits: ExtractionLimits) -> None:
    counter = _SheetCounter(limits)
    for info in archive.infolist():
        if info.filename.startswith("xl/worksheets/") and info.filename.endswith(".xml"):
            with archive.open(info) as member:
                counter.sheet(member)


def _write_sheet(writer: Writer, name: str, rows: list[list[str]]) -> None:
    lines = render_table(rows)
    if lines:
        writer.heading(1, name)
        writer.lines(lines)


def _not_a_worksheet(name: str) -> bool:
    return not name.startswith("xl/worksheets/")


def extract_xlsx(data: bytes, limits: ExtractionLimits) -> str:
    # Worksheets are streamed (and counted below); the other parts are loaded whole.
    with open_zip(data, limits, KIND, parsed_whole=_not_a_worksheet) as archive:
        _count_rows_and_cells(archive, limits)
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    writer = Writer(limits)
    budget = _RowBudget(limits)
    try:
        for sheet in workbook.worksheets:
            where = f"Sheet {sheet.title!r}"
            if (sheet.max_row or 0) > limits.max_table_rows:
                raise _too_many_rows(limits, where)
            if (sheet.max_column or 0) > limits.max_table_columns:
                raise _too_many_columns(limits, where)
            sheet.reset_dimensions()  # read what is there, no padding to a declared size
            rows: list[list[str]] = []
            # Without a declared size a row is as wide as its last cell: one over-wide row
            # is refused as soon as it is read.
            for row in sheet.iter_rows():
                if len(row) > limits.max_table_columns:
                    raise _too_many_columns(limits, where)
                cells = [
                    "" if cell.value is None else format_cell(cell.value, cell.number_format)
                    for cell in row
                ]
                budget.take(where, cells)
                if any(cells):
                    rows.append(cells)
            _write_sheet(writer, str(sheet.title), rows)
    finally:
        workbook.close()
    return writer.text()


def _csv_rows(text: str, delimiter: str) -> Iterable[list[str]]:
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)


def _delimiter(text: str, default: str) -> str:
    sample = text[: 64 * 1024]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return default


def extract_csv(text: str, name: str, limits: ExtractionLimits, *, tab: bool = False) -> str:
    """A CSV (or TSV) file as one sheet named after the file."""
    delimiter = "\t" if tab else _delimiter(text, ",")
    budget = _RowBudget(limits)
    rows: list[list[str]] = []
    where = "The table"
    try:
        for row in _csv_rows(text, delimiter):
            if len(row) > limits.max_table_columns:
                raise _too_many_columns(limits, where)
            budget.take(where, row)
            if any(cell.strip() for cell in row):
                rows.append(row)
    except csv.Error as exc:  # e.g. a field over the csv module's 128 KB field limit
        raise InvalidInput(f"The CSV file could not be read: {exc}.") from exc
    writer = Writer(limits)
    _write_sheet(writer, name or "Table", rows)
    return writer.text()
