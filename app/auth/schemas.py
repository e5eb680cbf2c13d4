from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

# Argon2 has no 72-byte limit (unlike bcrypt), so long passphrases hash in full.
Password = Annotated[str, Field(min_length=8, max_length=256)]


def _normalise_email(value: str) -> str:
    return value.strip().lower()


Email = Annotated[EmailStr, Field(max_length=320), AfterValidator(_normalise_email)]


class UserCreate(BaseModel):
    email: Email
    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=150)]
    password: Password


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    username: str
    is_admin: bool
    created_at: datetime


class LoginRequest(BaseModel):
    email: Annotated[str, Field(max_length=320), AfterValidator(_normalise_email)]
    password: Annotated[str, Field(max_length=256)]


class TokenPair(BaseModel):
    refresh: str
    access: str


class RefreshRequest(BaseModel):
    refresh: Annotated[str, Field(max_length=4096)]


class RefreshedTokens(BaseModel):
    access: str
    refresh: str


class OAuth2Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105
    refresh_token: str
