"""Field types shared by request schemas: text every database we support can store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime


def no_nul(value: str) -> str:
    # PostgreSQL `text` cannot hold U+0000 (asyncpg fails at the database, a 500); SQLite can,
    # but the same data must be valid on both, so it is a 422 everywhere.
    if "\x00" in value:
        raise ValueError("Text must not contain NUL (\\u0000) characters.")
    return value


def strip_nul(text: str) -> str:
    """For extracted text (PDF, HTML), where a stray NUL is noise, not the user's input."""
    return text.replace("\x00", "")


StorableStr = Annotated[str, AfterValidator(no_nul)]
"""A `str` field that is refused (422) if the database could not store it."""


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; `ValueError` (a 422) when UTC falls outside the years 1 to
    9999 that Python can represent (`9999-12-31T23:59:59-05:00`), where `astimezone` would
    raise `OverflowError` (a 500) at the database."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("The date is out of range once converted to UTC.") from exc


UtcDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]
"""A timezone-aware datetime field, normalised to UTC; out of range is a 422."""


def is_json_media_type(content_type: str | None) -> bool:
    """Whether FastAPI parses a body of this `Content-Type` as JSON: `application/json` or
    `application/<anything>+json`, in any letter case, with any parameters."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = media.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def is_form_media_type(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("application/x-www-form-urlencoded", "multipart/form-data")


def is_utf8_encodable(text: str) -> bool:
    """False for text holding a lone UTF-16 surrogate (JSON's `"\\ud800"`), which no UTF-8
    consumer (the tokenizer, the database driver, a hash) accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


Location = tuple[str | int, ...]
Problem = Literal["unicode", "nul"]


def text_problem(text: str) -> Problem | None:
    """Why text cannot be taken as it is: a lone surrogate ("unicode": no UTF-8 consumer takes
    it), a NUL ("nul": PostgreSQL cannot store it), or None."""
    if "\x00" in text:
        return "nul"
    return None if is_utf8_encodable(text) else "unicode"


def first_problem(value: object, where: Location = ()) -> tuple[Location, Problem] | None:
    """The location of the first string (key or value) of decoded JSON that `text_problem`
    refuses, and why; None if there is none. Iterative: deep nesting cannot exhaust the stack."""
    pending: list[tuple[object, Location]] = [(value, where)]
    while pending:
        item, loc = pending.pop()
        if isinstance(item, str):
            if (problem := text_problem(item)) is not None:
                return loc, problem
        elif isinstance(item, dict):
            children: list[tuple[object, Location]] = []
            for key, child in item.items():
                if isinstance(key, str) and (problem := text_problem(key)) is not None:
                    return loc, problem
                children.append((child, (*loc, str(key))))
            pending.extend(reversed(children))  # popped in document order
        elif isinstance(item, list):
            pending.extend(reversed([(child, (*loc, i)) for i, child in enumerate(item)]))
    return None


_SUSPECT_ESCAPES = ("\\u0000", *(f"\\ud{c}" for c in "89abcdef"))


def may_hold_problem_escape(text: str) -> bool:
    """Cheap pre-check of a JSON text that is valid UTF-8: a surrogate or a NUL can only come
    from a `\\uD800`-`\\uDFFF` or `\\u0000` escape (JSON forbids a raw NUL in strings), so
    bodies without one skip the decode-and-walk."""
    lowered = text.lower()
    return any(escape in lowered for escape in _SUSPECT_ESCAPES)
