"""Password hashing and JWTs: the only module that imports passlib and python-jose."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, TypeVar

from jose import JOSEError, jwk, jwt
from passlib.context import CryptContext

from app.core.errors import ServiceBusy

_T = TypeVar("_T")

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
    """argon2id through passlib. Both operations cost ~0.1 s of CPU each.

    They run in a pool of their own (`workers` threads), never the default executor that the
    embedder, PDF parsing and the database driver share: a flood of logins then takes one core
    at most, and chat keeps the rest. At most `max_waiting` calls queue for it; beyond that
    `ServiceBusy` (503) answers at once instead of growing the queue without bound.
    """

    def __init__(
        self,
        *,
        time_cost: int = 3,
        memory_kib: int = 65_536,
        workers: int = 1,
        max_waiting: int = 64,
    ) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__time_cost=time_cost,
            argon2__memory_cost=memory_kib,
            argon2__parallelism=1,
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._admitted = threading.BoundedSemaphore(workers + max_waiting)
        # Verified when the email is unknown, so a login takes as long for any email.
        self.dummy_hash = self._context.hash(uuid.uuid4().hex)

    def hash_sync(self, password: str) -> str:
        return str(self._context.hash(password))

    def verify_sync(self, password: str, password_hash: str) -> bool:
        try:
            return bool(self._context.verify(password, password_hash))
        except ValueError:  # malformed or unknown stored hash
            return False

    async def _run(self, call: Callable[..., _T], *args: str) -> _T:
        if not self._admitted.acquire(blocking=False):
            raise ServiceBusy("Too many sign-ins at once; try again in a moment.")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call, *args)
        finally:
            self._admitted.release()

    async def hash(self, password: str) -> str:
        return await self._run(self.hash_sync, password)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await self._run(self.verify_sync, password, password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TokenCodec:
    """Signs and checks HS* JWTs carrying `sub`, `type`, `jti`, `iat` and `exp`."""

    def __init__(self, key: str, algorithm: str = "HS256") -> None:
        self._key = key
        self._algorithm = algorithm
        # Built once: given the secret as a string, jose parses it (JSON first) on every
        # decode, about a third of the decode's time, on every authenticated request.
        self._verify_key = jwk.construct(key, algorithm)

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
                self._verify_key,
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
