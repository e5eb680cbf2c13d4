"""Sign-up, login, token rotation and revocation."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TypeGuard

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import RefreshToken, User
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.schemas import TokenPair, UserCreate
from app.auth.security import InvalidToken, PasswordHasher, TokenClaims, TokenCodec
from app.core.db import MAX_ID, utcnow
from app.core.errors import EmailTaken, InvalidCredentials, NotAuthenticated


def user_id_of(claims: TokenClaims) -> int:
    """The user id a token names; InvalidToken unless it is a plausible row id."""
    try:
        user_id = int(claims.subject)
    except ValueError as exc:
        raise InvalidToken("non-numeric subject") from exc
    if not 1 <= user_id <= MAX_ID:
        raise InvalidToken("subject out of range")
    return user_id


def issued_to(user: User | None, claims: TokenClaims) -> TypeGuard[User]:
    """True if the token was issued to this account: it exists, is active, and did not exist
    only after the token was signed (ids are never reused, and this holds even if they were)."""
    if user is None or not user.is_active:
        return False
    # `iat` has whole seconds; created_at has microseconds.
    return claims.issued_at >= user.created_at.replace(microsecond=0)


async def release_connection(session: AsyncSession) -> None:
    """End the read transaction before hashing, so the pooled connection goes back to the
    pool: a request waiting ~0.1 s (or, in a login flood, seconds) for the hash pool must not
    hold one, or a flood drains the pool and every other request times out."""
    if session.in_transaction() and not (session.new or session.dirty or session.deleted):
        await session.commit()


async def register_user(
    users: UserRepository, hasher: PasswordHasher, data: UserCreate, *, is_admin: bool = False
) -> User:
    if await users.get_by_email(data.email) is not None:
        raise EmailTaken()
    await release_connection(users.session)
    password_hash = await hasher.hash(data.password)
    user = User(
        email=data.email.lower(),
        username=data.username,
        password_hash=password_hash,
        is_active=True,
        is_admin=is_admin,
        created_at=utcnow(),
    )
    try:
        async with users.session.begin_nested():
            return await users.add(user)
    except IntegrityError as exc:  # lost a race with a concurrent sign-up
        raise EmailTaken() from exc


async def deactivate_user(
    users: UserRepository, refresh_tokens: RefreshTokenRepository, user: User
) -> int:
    """Disable the account: its access tokens stop at once (every request checks `is_active`)
    and its refresh tokens are revoked. Returns how many refresh tokens were revoked."""
    user.is_active = False
    await users.session.flush()
    return await refresh_tokens.revoke_user(user.id, utcnow())


class AuthService:
    """Accounts and tokens. Hashing runs in a worker thread: it costs ~0.1 s of CPU."""

    def __init__(
        self,
        users: UserRepository,
        refresh_tokens: RefreshTokenRepository,
        hasher: PasswordHasher,
        codec: TokenCodec,
        *,
        access_lifetime: timedelta,
        refresh_lifetime: timedelta,
    ) -> None:
        self.users = users
        self.refresh_tokens = refresh_tokens
        self.hasher = hasher
        self.codec = codec
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime

    async def register(self, data: UserCreate) -> User:
        return await register_user(self.users, self.hasher, data)

    async def authenticate(self, email: str, password: str) -> User:
        user = await self.users.get_by_email(email)
        await release_connection(self.users.session)
        # Unknown emails verify against a dummy hash so both failures take the same time.
        stored = user.password_hash if user else self.hasher.dummy_hash
        valid = await self.hasher.verify(password, stored)
        if user is None or not valid or not user.is_active:
            raise InvalidCredentials()
        return user

    async def verify_password(self, user: User, password: str) -> None:
        """Re-authentication before a destructive action; InvalidCredentials if wrong."""
        if not await self.hasher.verify(password, user.password_hash):
            raise InvalidCredentials("Incorrect password.")

    async def issue_tokens(self, user: User, *, family_id: str | None = None) -> TokenPair:
        """A new access and refresh token; the refresh token joins `family_id` (a rotation)
        or starts a family (a login)."""
        access, _ = self.codec.create(str(user.id), "access", self.access_lifetime)
        refresh, claims = self.codec.create(str(user.id), "refresh", self.refresh_lifetime)
        await self.refresh_tokens.add(
            RefreshToken(
                jti=claims.jti,
                user_id=user.id,
                expires_at=claims.expires_at,
                family_id=family_id or uuid.uuid4().hex,
            )
        )
        return TokenPair(refresh=refresh, access=access)

    def _refresh_claims(self, refresh_token: str) -> tuple[TokenClaims, int]:
        try:
            claims = self.codec.decode(refresh_token, "refresh")
            return claims, user_id_of(claims)
        except InvalidToken as exc:
            raise NotAuthenticated("Invalid or expired refresh token.") from exc

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair; each refresh token works once.

        Presenting a spent token again means it was copied: the whole family is revoked, so
        neither the thief nor the victim can keep refreshing from that login.
        """
        claims, user_id = self._refresh_claims(refresh_token)
        now = utcnow()
        if not await self.refresh_tokens.mark_used(claims.jti, user_id, now):
            stored = await self.refresh_tokens.get(claims.jti)
            if stored is not None and stored.user_id == user_id and stored.used_at is not None:
                await self.refresh_tokens.revoke_family(stored.family_id, now)
                # Committed here, not by the request: the 401 below rolls the request back.
                await self.refresh_tokens.session.commit()
            raise NotAuthenticated("This refresh token was already used or revoked.")
        user = await self.users.get(user_id)
        if not issued_to(user, claims):
            raise NotAuthenticated("The account no longer exists or is disabled.")
        stored = await self.refresh_tokens.get(claims.jti)
        assert stored is not None  # mark_used just matched it
        return await self.issue_tokens(user, family_id=stored.family_id)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the token's family: every refresh token rotated from the same login."""
        claims, user_id = self._refresh_claims(refresh_token)
        stored = await self.refresh_tokens.get(claims.jti)
        if stored is None or stored.user_id != user_id:
            raise NotAuthenticated("Invalid or expired refresh token.")
        await self.refresh_tokens.revoke_family(stored.family_id, utcnow())
