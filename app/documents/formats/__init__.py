"""Plain text out of uploaded files, recognised by their content.

Each format has a reader module; they all write Markdown-like text whose `#` headings are
the document's sections (Word headings, slides, sheets, e-mail subjects), which chunking
keeps apart. Parsing is CPU work: call `extract_upload` / `extract_text` from a worker
thread. Every reader works within `ExtractionLimits`; zip containers are checked before
anything is inflated (`archive`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePath

from app.core.errors import AppError, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from app.core.validation import strip_nul
from app.documents.formats import archive
from app.documents.formats.limits import ExtractionLimits, too_long
from app.documents.formats.markup import html_to_text

__all__ = [
    "ACCEPTED",
    "CONTENT_TYPES",
    "FORMATS",
    "ExtractionLimits",
    "Format",
    "content_type_for",
    "detect",
    "extract_text",
    "extract_upload",
    "html_to_text",
    "is_sectioned",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Format:
    content_type: str
    suffixes: tuple[str, ...]
    name: str
    # Whether its text carries `#` sections that chunking keeps apart.
    sectioned: bool = True


TEXT = "text/plain"
MARKDOWN = "text/markdown"
PDF = "application/pdf"
HTML = "text/html"
CSV = "text/csv"
TSV = "text/tab-separated-values"
JSON = "application/json"
RTF = "application/rtf"
EML = "message/rfc822"
EPUB = "application/epub+zip"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

FORMATS = (
    Format(TEXT, (".txt",), "text file", sectioned=False),
    Format(MARKDOWN, (".md", ".markdown"), "Markdown file"),
    Format(PDF, (".pdf",), "PDF", sectioned=False),
    Format(HTML, (".html", ".htm"), "HTML page"),
    Format(DOCX, (".docx",), "Word document"),
    Format(PPTX, (".pptx",), "PowerPoint presentation"),
    Format(XLSX, (".xlsx",), "Excel workbook"),
    Format(CSV, (".csv",), "CSV file"),
    Format(TSV, (".tsv",), "TSV file"),
    Format(EPUB, (".epub",), "EPUB e-book"),
    Format(EML, (".eml",), "e-mail"),
    Format(JSON, (".json",), "JSON file"),
    Format(RTF, (".rtf",), "RTF document", sectioned=False),
)
BY_TYPE = {f.content_type: f for f in FORMATS}
CONTENT_TYPES = {suffix: f.content_type for f in FORMATS for suffix in f.suffixes}
ACCEPTED = ", ".join(sorted(CONTENT_TYPES))
_ZIPPED = frozenset({DOCX, PPTX, XLSX, EPUB})
_TEXTUAL = frozenset({TEXT, MARKDOWN, HTML, CSV, TSV, JSON, EML})

_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_BINARY_MAGIC = (
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
    b"\x1f\x8b",
    b"7z\xbc\xaf",
    b"Rar!",
    b"\x7fELF",
    b"MZ",
    b"BZh",
    b"\xfd7zXZ",
    b"RIFF",
    b"OggS",
    b"ID3",
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML_START = re.compile(rb"^\s*(<!doctype\s+html|<html[\s>])", re.IGNORECASE)
_MAIL_HEADER = re.compile(
    rb"^(From|Received|Return-Path|MIME-Version|Message-ID|Subject|Date|To|Delivered-To)"
    rb"\s*:",
    re.IGNORECASE,
)


def _unsupported(suffix: str, what: str = "") -> UnsupportedMediaType:
    named = repr(suffix or "(no extension)")
    return UnsupportedMediaType(
        f"Unsupported file type {named}{f' ({what})' if what else ''}. Accepted: {ACCEPTED}."
    )


def content_type_for(filename: str) -> str:
    """The type a file name announces; `UnsupportedMediaType` naming the accepted ones."""
    suffix = PurePath(filename).suffix.lower()
    try:
        return CONTENT_TYPES[suffix]
    except KeyError:
        raise _unsupported(suffix) from None


def is_sectioned(content_type: str) -> bool:
    found = BY_TYPE.get(content_type)
    return found.sectioned if found is not None else False


def _zipped_type(data: bytes, suffix: str, limits: ExtractionLimits) -> str:
    names = archive.member_names(data, limits)
    if "word/document.xml" in names:
        return DOCX
    if "ppt/presentation.xml" in names:
        return PPTX
    if "xl/workbook.xml" in names:
        return XLSX
    if "META-INF/container.xml" in names:
        return EPUB
    raise _unsupported(suffix, "a zip archive that is not a Word, PowerPoint, Excel or EPUB file")


def detect(data: bytes, filename: str, limits: ExtractionLimits) -> str:
    """The file's type from its content (magic bytes, zip members), the name deciding only
    between text formats; never the client's `Content-Type`."""
    suffix = PurePath(filename).suffix.lower()
    named = CONTENT_TYPES.get(suffix)
    if data.startswith(b"%PDF-") or (named == PDF and b"%PDF-" in data[:1024]):
        return PDF
    if archive.is_zip(data):
        return _zipped_type(data, suffix, limits)
    if data.startswith(_OLE):
        raise _unsupported(
            suffix,
            "a legacy or encrypted Office file (.doc, .xls, .ppt, Outlook .msg); save it as "
            ".docx, .xlsx, .pptx or .eml, without a password",
        )
    if data.startswith(b"{\\rtf"):
        return RTF
    if data.startswith(_BINARY_MAGIC):
        raise _unsupported(suffix, "an image, audio, archive or program file")
    if named in _TEXTUAL:
        return named
    if named is not None:  # a .docx, .pdf, ... whose content is not one
        raise InvalidInput(
            f"The file is named {suffix}, but its content is not that of a {suffix} file: "
            "it may be corrupt."
        )
    head = data[:4096].lstrip(b"\xef\xbb\xbf")
    if _HTML_START.match(head):
        return HTML
    if _MAIL_HEADER.match(head) and re.search(rb"^From\s*:", head, re.MULTILINE | re.IGNORECASE):
        return EML
    raise _unsupported(suffix)


def _read(data: bytes, content_type: str, limits: ExtractionLimits, name: str) -> str:
    from app.documents.formats import ebook, mail, pdf, slides, spreadsheet, structured, word

    if content_type == PDF:
        return pdf.extract_pdf(data, limits)
    if content_type == DOCX:
        return word.extract_docx(data, limits)
    if content_type == PPTX:
        return slides.extract_pptx(data, limits)
    if content_type == XLSX:
        return spreadsheet.extract_xlsx(data, limits)
    if content_type == EPUB:
        return ebook.extract_epub(data, limits)
    if content_type == EML:
        return mail.extract_eml(data, limits, _read_attachment)
    if content_type == JSON:
        return structured.extract_json(data, limits)
    if content_type == RTF:
        return structured.extract_rtf(data, limits)
    text = structured.decode_utf8(data)
    if content_type in (CSV, TSV):
        return spreadsheet.extract_csv(text, name, limits, tab=content_type == TSV)
    if content_type == HTML:
        return html_to_text(text, limits)
    return text


def _read_attachment(data: bytes, filename: str, limits: ExtractionLimits) -> str:
    content_type = detect(data, filename, limits)
    if content_type == EML:  # forwarded messages are read as MIME parts, not re-parsed
        raise _unsupported(".eml", "an e-mail attached as a file")
    return _extract(data, content_type, limits, PurePath(filename).stem)


def _extract(data: bytes, content_type: str, limits: ExtractionLimits, name: str) -> str:
    kind = BY_TYPE[content_type].name if content_type in BY_TYPE else "file"
    try:
        return _read(data, content_type, limits, name)
    except AppError:
        raise
    except MemoryError as exc:
        raise PayloadTooLarge(f"The {kind} is too large to read.") from exc
    except RecursionError as exc:
        raise InvalidInput(f"The {kind} is nested too deeply to read.") from exc
    except Exception as exc:
        # Format libraries raise anything from KeyError to lxml errors on corrupt input;
        # the type is logged, never the content.
        logger.info("could not read a %s: %s", kind, type(exc).__name__)
        raise InvalidInput(f"The {kind} could not be read: it is corrupt or malformed.") from exc


def extract_text(
    data: bytes, content_type: str, limits: ExtractionLimits, *, name: str = ""
) -> str:
    """The text of a file of a known type, within `limits`. NUL characters are dropped (no
    database text type we support can hold them, and they carry no meaning in prose), and
    lone UTF-16 surrogates (JSON's `"\\ud800"`, RTF's `\\u-10240`) become U+FFFD, so the
    text can be hashed, tokenized and stored."""
    if content_type not in BY_TYPE:
        raise UnsupportedMediaType(f"Unsupported content type {content_type!r}.")
    text = _SURROGATE.sub("\ufffd", strip_nul(_extract(data, content_type, limits, name)))
    if len(text) > limits.max_chars:
        raise too_long(limits)
    if not text.strip():
        raise InvalidInput("The document contains no text.")
    return text


def extract_upload(data: bytes, filename: str, limits: ExtractionLimits) -> tuple[str, str]:
    """(content type, text) of an uploaded file, recognised by its content."""
    content_type = detect(data, filename, limits)
    return content_type, extract_text(data, content_type, limits, name=PurePath(filename).stem)
