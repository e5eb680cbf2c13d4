"""Opaque page cursors: the sort key of the last row served, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from app.core.db import MAX_ID
from app.core.errors import InvalidInput

MAX_CURSOR_CHARS = 200


def encode_cursor(*key: Any) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> list[Any]:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidInput("The cursor is not valid.")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput("The cursor is not valid.") from exc
    if not isinstance(values, list):
        raise InvalidInput("The cursor is not valid.")
    return values


def _row_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise InvalidInput("The cursor is not valid.")
    return value


def decode_id_cursor(cursor: str) -> int:
    values = _decode(cursor)
    if len(values) != 1:
        raise InvalidInput("The cursor is not valid.")
    return _row_id(values[0])


def decode_time_id_cursor(cursor: str) -> tuple[datetime, int]:
    values = _decode(cursor)
    if len(values) != 2 or not isinstance(values[0], str):
        raise InvalidInput("The cursor is not valid.")
    try:
        when = datetime.fromisoformat(values[0])
    except ValueError as exc:
        raise InvalidInput("The cursor is not valid.") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:  # `0001-01-01T00:00:00+05:00` is before year 1 in UTC
        when = when.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput("The cursor is not valid.") from exc
    return when, _row_id(values[1])
