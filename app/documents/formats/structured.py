"""JSON, RTF and plain text."""

from __future__ import annotations

import json
from typing import Any

from app.core.errors import InvalidInput, PayloadTooLarge
from app.documents.formats.limits import ExtractionLimits, Writer, one_line
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


def _write(value: Any, path: str, writer: Writer, lines: list[str]) -> None:
    if _flat_records(value):
        keys = list(dict.fromkeys(k for item in value for k in item))
        rows = [keys, *([_scalar(item.get(k, "")) for k in keys] for item in value)]
        lines.extend(f"{path}: {row}" if path else row for row in render_table(rows))
    elif isinstance(value, dict):
        for key, item in value.items():
            _write(item, f"{path}.{key}" if path else str(key), writer, lines)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _write(item, f"{path}[{index}]", writer, lines)
    else:
        lines.append(f"{path}: {_scalar(value)}" if path else _scalar(value))
        if len(lines) % 1000 == 0 and sum(map(len, lines)) > writer.limits.max_chars:
            writer.lines(lines)  # raises past the ceiling


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
    if isinstance(value, dict):
        scalars: list[str] = []
        for key, item in value.items():
            if isinstance(item, dict | list):
                writer.lines(scalars)
                scalars = []
                writer.heading(1, str(key))
                lines: list[str] = []
                _write(item, "", writer, lines)
                writer.lines(lines)
            else:
                scalars.append(f"{key}: {_scalar(item)}")
        writer.lines(scalars)
    else:
        lines = []
        _write(value, "", writer, lines)
        writer.lines(lines)
    return writer.text()


def extract_rtf(data: bytes, limits: ExtractionLimits) -> str:
    from striprtf.striprtf import rtf_to_text

    # RTF is 7-bit: bytes beyond are escapes' business; latin-1 never fails.
    text: str = rtf_to_text(data.decode("latin-1"), errors="replace")  # type: ignore[no-untyped-call]
    writer = Writer(limits)
    for paragraph in text.split("\n\n"):
        writer.paragraph(paragraph)
    return writer.text()
