"""Sign-up, login and token rotation."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app.auth.models import RefreshToken, User
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.schemas import TokenPair, UserCreate
from app.auth.security import InvalidToken, PasswordHasher, TokenCodec
from app.db import utcnow
from app.errors import EmailTaken, InvalidCredentials, NotAuthenticated


async def register_user(
    users: UserRepository, hasher: PasswordHasher, data: UserCreate, *, is_admin: bool = False
) -> User:
    if await users.get_by_email(data.email) is not None:
        raise EmailTaken()
    password_hash = await asyncio.to_thread(hasher.hash, data.password)
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
        # Unknown emails verify against a dummy hash so both failures take the same time.
        stored = user.password_hash if user else self.hasher.dummy_hash
        valid = await asyncio.to_thread(self.hasher.verify, password, stored)
        if user is None or not valid or not user.is_active:
            raise InvalidCredentials()
        return user

    async def issue_tokens(self, user: User) -> TokenPair:
        access, _ = self.codec.create(str(user.id), "access", self.access_lifetime)
        refresh, claims = self.codec.create(str(user.id), "refresh", self.refresh_lifetime)
        await self.refresh_tokens.add(
            RefreshToken(jti=claims.jti, user_id=user.id, expires_at=claims.expires_at)
        )
        return TokenPair(refresh=refresh, access=access)

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Trade a refresh token for a new pair; each refresh token works once."""
        try:
            claims = self.codec.decode(refresh_token, "refresh")
            user_id = int(claims.subject)
        except (InvalidToken, ValueError) as exc:
            raise NotAuthenticated("Invalid or expired refresh token.") from exc
        if not await self.refresh_tokens.mark_used(claims.jti, user_id, utcnow()):
            raise NotAuthenticated("This refresh token was already used or revoked.")
        user = await self.users.get(user_id)
        if user is None or not user.is_active:
            raise NotAuthenticated("The account no longer exists or is disabled.")
        return await self.issue_tokens(user)
