"""Field types shared by request schemas: text every database we support can store."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


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
