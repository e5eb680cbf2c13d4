"""JSON, RTF and plain text."""

from __future__ import annotations

import json
from typing import Any

from app.core.errors import InvalidInput, PayloadTooLarge
from app.documents.formats.limits import ExtractionLimits, Writer, one_line, too_long
from app.documents.formats.tables import render_table


def decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The file is not valid UTF-8 text.") from exc


def _depth(text: str, limit: int) -> None:
    """Refuse nesting past `limit` before `json.loads` recurses into it."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise PayloadTooLarge(
                    f"The JSON nests deeper than {limit} levels (MAX_NESTING_DEPTH)."
                )
        elif char in "]}":
            depth -= 1


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return one_line(str(value))


def _flat_records(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(item, dict) and all(not isinstance(v, dict | list) for v in item.values())
            for item in value
        )
    )


class _Lines:
    """Lines of one section, refused as soon as they would pass the character ceiling
    (a short list of numbers under a long path makes far more text than JSON)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self.lines: list[str] = []
        self.size = 0

    def add(self, line: str) -> None:
        self.size += len(line) + 1
        if self.writer.size + self.size > self.writer.limits.max_chars:
            raise too_long(self.writer.limits)
        self.lines.append(line)

    def flush(self) -> None:
        self.writer.lines(self.lines)
        self.lines, self.size = [], 0


def _write(value: Any, path: str, out: _Lines) -> None:
    if _flat_records(value):
        keys = list(dict.fromkeys(k for item in value for k in item))
        rows = [keys, *([_scalar(item.get(k, "")) for k in keys] for item in value)]
        for row in render_table(rows):
            out.add(f"{path}: {row}" if path else row)
    elif isinstance(value, dict):
        for key, item in value.items():
            _write(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _write(item, f"{path}[{index}]", out)
    else:
        out.add(f"{path}: {_scalar(value)}" if path else _scalar(value))


def extract_json(data: bytes, limits: ExtractionLimits) -> str:
    """Top-level keys holding objects or lists become sections; values are written as
    `path: value` lines, and lists of flat records as rows with their keys."""
    text = decode_utf8(data)
    _depth(text, limits.max_nesting_depth)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidInput("The JSON file could not be parsed.") from exc
    writer = Writer(limits)
    out = _Lines(writer)
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list):
                out.flush()
                writer.heading(1, str(key))
                _write(item, "", out)
                out.flush()
            else:
                out.add(f"{key}: {_scalar(item)}")
    else:
        _write(value, "", out)
    out.flush()
    return writer.text()


def extract_rtf(data: bytes, limits: ExtractionLimits) -> str:
    from striprtf.striprtf import rtf_to_text

    # RTF is 7-bit: bytes beyond are escapes' business; latin-1 never fails.
    text: str = rtf_to_text(data.decode("latin-1"), errors="replace")  # type: ignore[no-untyped-call]
    writer = Writer(limits)
    for paragraph in text.split("\n\n"):
        writer.paragraph(paragraph)
    return writer.text()
