"""Zip containers (.docx, .pptx, .xlsx, .epub) checked before any member is inflated.

The central directory declares each member's sizes, and Python's zipfile never inflates a
member past its declared size, so checking the declarations bounds the work: member count,
total uncompressed size and compression ratio. The count is read from the end record
before zipfile builds one object per member. XML members whose prolog declares entities
(the "billion laughs") are refused outright: no Office or EPUB file needs them.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
from collections.abc import Callable
from typing import IO

from app.core.errors import InvalidInput, PayloadTooLarge
from app.documents.formats.limits import ExtractionLimits

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
# Small members may compress extremely well (an empty sheet); the ratio is checked for
# members that inflate past this, where it matters.
RATIO_FLOOR_BYTES = 1024 * 1024
_END_RECORD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_END = b"PK\x06\x06"
_XML_SUFFIXES = (".xml", ".rels", ".xhtml", ".html", ".htm", ".opf", ".ncx", ".vml")
_PROLOG_BYTES = 64 * 1024
_ROOT_ELEMENT = re.compile(rb"<[A-Za-z_]")


def is_zip(data: bytes) -> bool:
    return data[:4] in ZIP_MAGIC


def declared_members(data: bytes) -> int:
    """The member count of the end-of-central-directory record (zip64 aware)."""
    start = data.rfind(_END_RECORD, max(0, len(data) - 65_557))
    if start < 0 or len(data) < start + 22:
        raise InvalidInput("The file is not a valid zip container (no central directory).")
    (total,) = struct.unpack_from("<H", data, start + 10)
    locator = start - 20
    if total == 0xFFFF and locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
        (offset,) = struct.unpack_from("<Q", data, locator + 8)
        if data[offset : offset + 4] == _ZIP64_END and len(data) >= offset + 40:
            (total,) = struct.unpack_from("<Q", data, offset + 32)
    return int(total)


def _prolog_declares_entities(member: IO[bytes]) -> bool:
    head = member.read(_PROLOG_BYTES)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        head = head.decode("utf-16", errors="ignore").encode("utf-8")
    root = _ROOT_ELEMENT.search(head)
    prolog = head[: root.start()] if root else head
    return b"<!ENTITY" in prolog


def _count_tags(member: IO[bytes], budget: int) -> int:
    """The tags ("<") of a member, read in blocks; stops once past `budget`."""
    tags = 0
    while tags <= budget and (block := member.read(1 << 20)):
        tags += block.count(b"<")
    return tags


def open_zip(
    data: bytes,
    limits: ExtractionLimits,
    kind: str,
    *,
    parsed_whole: Callable[[str], bool] = lambda name: True,
) -> zipfile.ZipFile:
    """The archive, once its declarations are within the limits and no XML member declares
    entities; `PayloadTooLarge` or `InvalidInput` otherwise. `kind` names the format in
    the messages ("Word document"). The XML members `parsed_whole` selects (the ones the
    format's library loads into one tree, a few hundred bytes of memory per element) may
    hold at most MAX_XML_TAGS tags between them."""
    members = declared_members(data)
    if members > limits.max_zip_members:
        raise PayloadTooLarge(
            f"The {kind} holds {members} files; at most {limits.max_zip_members} are accepted "
            "(MAX_ZIP_MEMBERS)."
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error) as exc:
        raise InvalidInput(f"The {kind} is corrupt (not a readable zip container).") from exc
    if len(infos) > limits.max_zip_members:
        raise PayloadTooLarge(
            f"The {kind} holds {len(infos)} files; at most {limits.max_zip_members} are "
            "accepted (MAX_ZIP_MEMBERS)."
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_zip_bytes:
        raise PayloadTooLarge(
            f"The {kind} unpacks to {total} bytes; at most {limits.max_zip_bytes} are accepted "
            "(MAX_ZIP_UNCOMPRESSED_BYTES)."
        )
    for info in infos:
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > limits.max_zip_ratio * max(
            info.compress_size, 1
        ):
            raise PayloadTooLarge(
                f"The {kind} has a member compressed more than {limits.max_zip_ratio} to 1 "
                "(MAX_ZIP_RATIO): refused as a zip bomb."
            )
    tags = 0
    try:
        for info in infos:
            if info.filename.lower().endswith(_XML_SUFFIXES) and not info.is_dir():
                with archive.open(info) as member:
                    if _prolog_declares_entities(member):
                        raise InvalidInput(
                            f"The {kind} contains XML that declares entities; refused "
                            "(entity expansion)."
                        )
                if parsed_whole(info.filename):
                    with archive.open(info) as member:
                        tags += _count_tags(member, limits.max_xml_tags - tags)
                    if tags > limits.max_xml_tags:
                        raise PayloadTooLarge(
                            f"The {kind} has more than {limits.max_xml_tags} XML tags "
                            "(MAX_XML_TAGS)."
                        )
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
        # Corrupt or encrypted members, unknown compression methods.
        raise InvalidInput(f"The {kind} is corrupt or encrypted.") from exc
    return archive


def member_names(data: bytes, limits: ExtractionLimits) -> set[str]:
    """The member names, for recognising the format; the same count ceiling applies."""
    if declared_members(data) > limits.max_zip_members:
        raise PayloadTooLarge(
            f"The archive holds more than {limits.max_zip_members} files (MAX_ZIP_MEMBERS)."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return set(archive.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, struct.error) as exc:
        raise InvalidInput("The file is corrupt (not a readable zip container).") from exc


def read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError as exc:
        raise InvalidInput(f"The archive has no {name!r}.") from exc
