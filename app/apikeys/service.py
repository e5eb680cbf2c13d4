"""Personal API keys: create, list and revoke them, and authenticate requests that carry one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.apikeys.hashing import (
    MAX_KEY_CHARS,
    display_prefix,
    generate_key,
    hash_key,
    looks_like_api_key,
)
from app.apikeys.models import ApiKey
from app.apikeys.repository import ApiKeyRepository
from app.apikeys.schemas import ApiKeyCreate
from app.auth.models import User
from app.auth.principal import Principal
from app.collections.access import CollectionNotFound
from app.collections.repository import CollectionRepository
from app.core.db import utcnow
from app.core.errors import (
    Conflict,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
)


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    default_detail = "No such API key."


class TooManyApiKeys(Conflict):
    code = "too_many_api_keys"
    default_detail = "You have reached the maximum number of API keys; revoke one first."


class ApiKeyService:
    """Key management in the request's session (the session dependency commits)."""

    def __init__(self, keys: ApiKeyRepository, *, pepper: bytes, max_per_user: int) -> None:
        self.keys = keys
        self.pepper = pepper
        self.max_per_user = max_per_user

    async def create(self, user: User, data: ApiKeyCreate) -> tuple[ApiKey, str]:
        """A new key and its one-time plaintext. With `collection_ids`, each must be a
        collection the user belongs to (else `CollectionNotFound`)."""
        now = utcnow()
        if data.expires_at is not None and data.expires_at <= now:
            raise InvalidInput("expires_at must be in the future.")
        if data.scopes and not user.is_admin:
            raise PermissionDenied("Only administrators may create keys with the admin scope.")
        if data.collection_ids is not None:
            roles = await CollectionRepository(self.keys.session).roles_of(user.id)
            if any(c not in roles for c in data.collection_ids):
                raise CollectionNotFound()
        if await self.keys.count_usable(user.id, now) >= self.max_per_user:
            raise TooManyApiKeys()
        # Keeps a user's rows within the limit however often keys are made and revoked.
        await self.keys.prune(user.id, now)
        plaintext = generate_key()
        key = ApiKey(
            user_id=user.id,
            name=data.name,
            prefix=display_prefix(plaintext),
            key_hash=hash_key(plaintext, self.pepper),
            created_at=now,
            expires_at=data.expires_at,
            scopes=sorted(set(data.scopes)),
            collection_scoped=data.collection_ids is not None,
        )
        key = await self.keys.add(key)
        if data.collection_ids is not None:
            await self.keys.add_scope(key.id, data.collection_ids)
        return key, plaintext

    async def scopes(self, keys: Sequence[ApiKey]) -> dict[int, list[int]]:
        """The collections of each collection-scoped key among `keys`."""
        return await self.keys.scopes([k.id for k in keys if k.collection_scoped])

    async def list(self, user: User) -> Sequence[ApiKey]:
        return await self.keys.list_unrevoked(user.id)

    async def revoke(self, user: User, key_id: int) -> None:
        if not await self.keys.revoke(key_id, user.id, utcnow()):
            raise ApiKeyNotFound()


async def authenticate_api_key(
    sessions: async_sessionmaker[AsyncSession],
    token: str,
    *,
    pepper: bytes,
    touch_interval: timedelta,
) -> Principal:
    """The owner of a valid key, or NotAuthenticated for an unknown, revoked or expired key
    or a disabled owner. Opens its own short session, so no connection is held afterwards;
    `last_used_at` is written at most once per `touch_interval`, the only write."""
    if not looks_like_api_key(token) or len(token) > MAX_KEY_CHARS:
        raise NotAuthenticated("Invalid or revoked API key.")
    now = utcnow()
    async with sessions() as session:
        keys = ApiKeyRepository(session)
        found = await keys.find_with_owner(hash_key(token, pepper))
        if found is None or found[0].revoked_at is not None:
            raise NotAuthenticated("Invalid or revoked API key.")
        key, user = found
        if key.expires_at is not None and key.expires_at <= now:
            raise NotAuthenticated("This API key has expired.")
        if not user.is_active:
            raise NotAuthenticated("The account no longer exists or is disabled.")
        scope = (
            frozenset((await keys.scopes([key.id])).get(key.id, ()))
            if key.collection_scoped
            else None
        )
        not_since = now - touch_interval
        if key.last_used_at is None or key.last_used_at <= not_since:
            await keys.touch(key.id, now, not_since)
            await session.commit()
    return Principal(
        user=user, key_id=key.id, collection_ids=scope, scopes=frozenset(key.scopes or ())
    )
