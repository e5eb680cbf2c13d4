"""Password hashing and JWTs: the only module that imports passlib and python-jose."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from jose import JOSEError, jwt
from passlib.context import CryptContext

TokenType = Literal["access", "refresh"]


class InvalidToken(Exception):
    """The token is malformed, expired, wrongly signed or of the wrong type."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    type: TokenType
    jti: str
    issued_at: datetime
    expires_at: datetime


class PasswordHasher:
    """argon2id through passlib. Both calls are CPU-bound (~0.1 s): call them from a thread."""

    def __init__(self, *, time_cost: int = 3, memory_kib: int = 65_536) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__time_cost=time_cost,
            argon2__memory_cost=memory_kib,
            argon2__parallelism=1,
        )
        # Verified when the email is unknown, so a login takes as long for any email.
        self.dummy_hash = self._context.hash(uuid.uuid4().hex)

    def hash(self, password: str) -> str:
        return str(self._context.hash(password))

    def verify(self, password: str, password_hash: str) -> bool:
        try:
            return bool(self._context.verify(password, password_hash))
        except ValueError:  # malformed or unknown stored hash
            return False


class TokenCodec:
    """Signs and checks HS* JWTs carrying `sub`, `type`, `jti`, `iat` and `exp`."""

    def __init__(self, key: str, algorithm: str = "HS256") -> None:
        self._key = key
        self._algorithm = algorithm

    def create(
        self, subject: str, token_type: TokenType, lifetime: timedelta
    ) -> tuple[str, TokenClaims]:
        now = datetime.now(UTC).replace(microsecond=0)
        claims = TokenClaims(subject, token_type, uuid.uuid4().hex, now, now + lifetime)
        payload = {
            "sub": claims.subject,
            "type": claims.type,
            "jti": claims.jti,
            "iat": int(now.timestamp()),
            "exp": int(claims.expires_at.timestamp()),
        }
        return str(jwt.encode(payload, self._key, algorithm=self._algorithm)), claims

    def decode(self, token: str, expected_type: TokenType) -> TokenClaims:
        try:
            # An explicit algorithm list rejects `alg: none` and algorithm confusion. JOSEError
            # covers JWTError and JWKError (raised for unknown algorithms, not a JWTError).
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_jti": True,
                },
            )
        except (JOSEError, ValueError, TypeError, OverflowError, OSError) as exc:
            # OverflowError/OSError: an absurd `exp`/`iat` that datetime cannot represent.
            raise InvalidToken(str(exc)) from exc
        if payload.get("type") != expected_type:
            raise InvalidToken(f"expected a {expected_type} token")
        try:
            return TokenClaims(
                subject=str(payload["sub"]),
                type=expected_type,
                jti=str(payload["jti"]),
                issued_at=datetime.fromtimestamp(int(payload["iat"]), UTC),
                expires_at=datetime.fromtimestamp(int(payload["exp"]), UTC),
            )
        except (KeyError, ValueError, TypeError, OverflowError, OSError) as exc:
            raise InvalidToken("malformed claims") from exc
