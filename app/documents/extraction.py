"""Plain text out of uploaded files: .txt, .md, .pdf, .html."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from app.core.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from app.core.validation import strip_nul

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


@dataclass(frozen=True, slots=True)
class ExtractionLimits:
    """What one document may cost to read: a few KB of PDF can expand to tens of MB of text
    (pages may share one content stream), so extraction stops as soon as a cap is crossed."""

    max_chars: int
    max_pdf_pages: int


def _too_long(limits: ExtractionLimits) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The document's text is longer than {limits.max_chars} characters (MAX_DOCUMENT_CHARS)."
    )


def pdf_to_text(data: bytes, limits: ExtractionLimits) -> str:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, LimitReachedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # thousands of warnings per bad file
    parts: list[str] = []
    size = 0
    try:
        reader = PdfReader(io.BytesIO(data))
        if len(reader.pages) > limits.max_pdf_pages:
            raise PayloadTooLarge(
                f"The PDF has {len(reader.pages)} pages; at most {limits.max_pdf_pages} "
                "are accepted (MAX_PDF_PAGES)."
            )
        for page in reader.pages:
            text = page.extract_text() or ""
            size += len(text) + 2
            if size > limits.max_chars:
                raise _too_long(limits)
            parts.append(text)
    except LimitReachedError as exc:
        raise PayloadTooLarge("The PDF expands beyond the size pypdf accepts.") from exc
    except DependencyError as exc:
        raise InvalidInput("The PDF is encrypted; upload an unencrypted copy.") from exc
    except NotImplementedError as exc:
        raise InvalidInput("The PDF uses a feature that cannot be read.") from exc
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidInput("The PDF could not be read.") from exc
    return "\n\n".join(parts)


def extract_text(data: bytes, content_type: str, limits: ExtractionLimits) -> str:
    """CPU-bound for PDFs: call from a worker thread. NUL characters are dropped (no
    database text type we support can hold them, and they carry no meaning in prose)."""
    if content_type == "application/pdf":
        text = pdf_to_text(data, limits)
    elif content_type == "text/html":
        text = html_to_text(_decode(data))
    else:
        text = _decode(data)
    text = strip_nul(text)
    if len(text) > limits.max_chars:
        raise _too_long(limits)
    if not text.strip():
        raise InvalidInput("The document contains no text.")
    return text
