"""EPUB: the chapters in reading order (the package's spine), each read as HTML.

Read with zipfile and defusedxml rather than an e-book library: EbookLib, the maintained
one, is AGPL-licensed and loads every member into memory; an EPUB is a zip of XHTML files
and two small XML indexes, which the standard library reads under our own archive checks.
"""

from __future__ import annotations

import posixpath
import zipfile
from urllib.parse import unquote
from xml.etree.ElementTree import Element

from app.core.errors import InvalidInput
from app.documents.formats.archive import open_zip, read_member
from app.documents.formats.limits import ExtractionLimits, Writer
from app.documents.formats.markup import write_html

KIND = "EPUB e-book"
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml(data: bytes) -> Element:
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, fromstring

    try:
        return fromstring(data)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise InvalidInput(f"The {KIND} has an unreadable index.") from exc


def _spine(archive: zipfile.ZipFile) -> list[str]:
    container = _xml(read_member(archive, "META-INF/container.xml"))
    rootfile = next(
        (e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None
    )
    if not rootfile:
        raise InvalidInput(f"The {KIND} names no package document.")
    package = _xml(read_member(archive, rootfile))
    base = posixpath.dirname(rootfile)
    manifest = {
        item.get("id"): (item.get("href") or "", item.get("media-type") or "")
        for item in package.iter()
        if _local(item.tag) == "item"
    }
    paths = []
    for ref in package.iter():
        if _local(ref.tag) != "itemref":
            continue
        href, media_type = manifest.get(ref.get("idref"), ("", ""))
        if href and media_type in _HTML_TYPES:
            paths.append(posixpath.normpath(posixpath.join(base, unquote(href.split("#")[0]))))
    return paths


def _is_index(name: str) -> bool:
    return name.lower().endswith((".opf", "container.xml"))


def extract_epub(data: bytes, limits: ExtractionLimits) -> str:
    writer = Writer(limits)
    # Chapters are read by a streaming HTML parser; only the two indexes become trees.
    with open_zip(data, limits, KIND, parsed_whole=_is_index) as archive:
        for path in _spine(archive):
            html = read_member(archive, path).decode("utf-8", errors="replace")
            write_html(html, writer, limits, fallback_title=True)
    return writer.text()
