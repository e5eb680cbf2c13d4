from __future__ import annotations

import contextlib
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from app.core.validation import StorableStr, no_nul

# Argon2 has no 72-byte limit (unlike bcrypt), so long passphrases hash in full.
Password = Annotated[str, Field(min_length=8, max_length=256)]


def normalize_email(value: str) -> str:
    """The one spelling an address is stored and looked up by: NFC, IDNA domains in Unicode,
    lower case. Sign-up, login and the OAuth2 form all go through here, so an address typed
    in NFD or with a punycode domain finds its account."""
    value = unicodedata.normalize("NFC", value.strip())
    with contextlib.suppress(EmailNotValidError):  # login: an invalid address matches nobody
        value = validate_email(value, check_deliverability=False).normalized
    return value.lower()


Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(normalize_email)]
LoginEmail = Annotated[StorableStr, Field(max_length=320), AfterValidator(normalize_email)]


class UserCreate(BaseModel):
    email: Email
    # The constraints before the NUL check: after a validator (`StorableStr` is `str` plus
    # one), pydantic drops `strip_whitespace`, and a blank name passed `min_length`.
    username: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=150),
        AfterValidator(no_nul),
    ]
    password: Annotated[Password, AfterValidator(no_nul)]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    username: str
    is_admin: bool
    created_at: datetime


class LoginRequest(BaseModel):
    email: LoginEmail
    password: Annotated[str, Field(max_length=256)]


class PasswordConfirmation(BaseModel):
    """Re-authentication for destructive account actions."""

    password: Annotated[str, Field(max_length=256)]


class TokenPair(BaseModel):
    refresh: str
    access: str


class RefreshRequest(BaseModel):
    refresh: Annotated[str, Field(max_length=4096)]


class LogoutRequest(RefreshRequest):
    """The refresh token whose family (every token rotated from the same login) is revoked."""


class RefreshedTokens(BaseModel):
    access: str
    refresh: str


class OAuth2Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    refresh_token: str
