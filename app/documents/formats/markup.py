"""HTML (web pages, EPUB chapters, e-mail bodies) as sectioned text: `<h1>` to `<h6>` become
headings, list items stay one per line, table rows carry their headers. The standard
library's parser never expands entities beyond the HTML ones and fetches nothing."""

from __future__ import annotations

from html.parser import HTMLParser

from app.documents.formats.limits import ExtractionLimits, Writer, one_line
from app.documents.formats.tables import render_table

_SKIP = frozenset({"script", "style", "noscript", "template", "head", "svg", "math"})
_BLOCK = frozenset(
    {
        "p",
        "div",
        "br",
        "section",
        "article",
        "header",
        "footer",
        "aside",
        "nav",
        "main",
        "pre",
        "blockquote",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "figure",
        "figcaption",
        "hr",
        "address",
    }
)
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _Table:
    def __init__(self) -> None:
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def end_cell(self) -> None:
        if self.cell is not None:
            if not self.rows:
                self.rows.append([])
            self.rows[-1].append(one_line("".join(self.cell)))
            self.cell = None


class _Converter(HTMLParser):
    def __init__(self, writer: Writer, max_depth: int) -> None:
        super().__init__(convert_charrefs=True)
        self.writer = writer
        self.max_depth = max_depth
        self.title = ""
        self.headings = 0
        self._text: list[str] = []
        self._skipping = 0
        self._in_title = False
        self._heading: tuple[int, list[str]] | None = None
        self._tables: list[_Table] = []

    def _flush(self) -> None:
        text = "".join(self._text)
        self._text = []
        lines = [one_line(line) for line in text.split("\n")]
        self.writer.paragraph("\n".join(line for line in lines if line))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skipping += 1
        if tag == "title":
            self._in_title = True
        if self._skipping:
            return
        if tag in _HEADINGS and not self._tables:
            self._flush()
            self._heading = (_HEADINGS[tag], [])
        elif tag == "table":
            if len(self._tables) >= self.max_depth:
                return
            if not self._tables:
                self._flush()
            self._tables.append(_Table())
        elif self._tables and tag == "tr":
            self._tables[-1].end_cell()
            self._tables[-1].rows.append([])
        elif self._tables and tag in ("td", "th"):
            self._tables[-1].end_cell()
            self._tables[-1].cell = []
        elif tag == "li":
            self._text.append("\n- ")
        elif tag in _BLOCK:
            self._text.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in _SKIP:
            self._skipping = max(0, self._skipping - 1)
            return
        if self._skipping:
            return
        if tag in _HEADINGS and self._heading is not None:
            level, parts = self._heading
            self._heading = None
            self.writer.heading(level, "".join(parts))
            self.headings += 1
        elif tag == "table" and self._tables:
            table = self._tables.pop()
            table.end_cell()
            lines = render_table(table.rows)
            if self._tables:  # a nested table is one cell's text
                target = self._tables[-1].cell
                if target is not None:
                    target.append(" ".join(lines))
            else:
                self.writer.lines(lines)
        elif self._tables and tag in ("td", "th"):
            self._tables[-1].end_cell()
        elif tag in _BLOCK or tag == "li":
            self._text.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
            return
        if self._skipping:
            return
        if self._heading is not None:
            self._heading[1].append(data)
        elif self._tables:
            cell = self._tables[-1].cell
            if cell is not None:
                cell.append(data)
        else:
            self._text.append(data)

    def finish(self) -> None:
        self.close()
        while self._tables:
            self.handle_endtag("table")
        if self._heading is not None:
            self.handle_endtag(f"h{self._heading[0]}")
        self._flush()


def write_html(
    html: str, writer: Writer, limits: ExtractionLimits, *, fallback_title: bool = False
) -> None:
    """Append the page's text to `writer`; with `fallback_title`, a page without headings
    (an EPUB chapter) is titled by its `<title>`."""
    inner = Writer(limits)
    converter = _Converter(inner, limits.max_nesting_depth)
    converter.feed(html)
    converter.finish()
    if fallback_title and not converter.headings and one_line(converter.title):
        writer.heading(1, converter.title)
    writer.markdown(inner.text())


def html_to_text(html: str, limits: ExtractionLimits | None = None) -> str:
    """The page as sectioned text (see the module docstring)."""
    limits = limits or ExtractionLimits(max_chars=max(len(html) * 2, 1))
    writer = Writer(limits)
    write_html(html, writer, limits)
    return writer.text()
