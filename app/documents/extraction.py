"""Plain text out of uploaded files: .txt, .md, .pdf, .html."""

from __future__ import annotations

import io
from html.parser import HTMLParser
from pathlib import PurePath

from app.errors import InvalidInput, UnsupportedMediaType

CONTENT_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".htm": "text/html",
}
SUPPORTED = ", ".join(sorted(CONTENT_TYPES))


def content_type_for(filename: str) -> str:
    suffix = PurePath(filename).suffix.lower()
    try:
        return CONTENT_TYPES[suffix]
    except KeyError:
        raise UnsupportedMediaType(
            f"Unsupported file type {suffix or '(none)'!r}; supported: {SUPPORTED}."
        ) from None


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The file is not valid UTF-8 text.") from exc


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "section",
            "article",
            "pre",
            "blockquote",
            "title",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts)


def pdf_to_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput("The PDF could not be read.") from exc


def extract_text(data: bytes, content_type: str) -> str:
    """CPU-bound for PDFs: call from a worker thread."""
    if content_type == "application/pdf":
        text = pdf_to_text(data)
    elif content_type == "text/html":
        text = html_to_text(_decode(data))
    else:
        text = _decode(data)
    if not text.strip():
        raise InvalidInput("The document contains no text.")
    return text
