from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.apikeys.models import ApiKey, ApiKeyCollection
from app.auth.models import User


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        await self.session.flush()
        return key

    async def add_scope(self, key_id: int, collection_ids: Sequence[int]) -> None:
        for collection_id in sorted(set(collection_ids)):
            self.session.add(ApiKeyCollection(api_key_id=key_id, collection_id=collection_id))
        await self.session.flush()

    async def scopes(self, key_ids: Sequence[int]) -> dict[int, list[int]]:
        """Each key's collections (keys without any are absent)."""
        if not key_ids:
            return {}
        query = (
            select(ApiKeyCollection.api_key_id, ApiKeyCollection.collection_id)
            .where(ApiKeyCollection.api_key_id.in_(list(key_ids)))
            .order_by(ApiKeyCollection.api_key_id, ApiKeyCollection.collection_id)
        )
        found: dict[int, list[int]] = {}
        for key_id, collection_id in (await self.session.execute(query)).all():
            found.setdefault(key_id, []).append(collection_id)
        return found

    async def list_unrevoked(self, user_id: int) -> Sequence[ApiKey]:
        query = (
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.id)
        )
        return (await self.session.execute(query)).scalars().all()

    async def count_usable(self, user_id: int, now: datetime) -> int:
        query = select(func.count(ApiKey.id)).where(
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
        )
        return int((await self.session.execute(query)).scalar_one())

    async def prune(self, user_id: int, now: datetime) -> None:
        """Delete the user's revoked and expired keys: they can never authenticate again."""
        await self.session.execute(
            delete(ApiKey).where(
                ApiKey.user_id == user_id,
                or_(ApiKey.revoked_at.is_not(None), ApiKey.expires_at <= now),
            )
        )

    async def revoke(self, key_id: int, user_id: int, now: datetime) -> bool:
        """Revoke the user's key; False if it is unknown, someone else's or already revoked."""
        result = await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    async def find_with_owner(self, key_hash: str) -> tuple[ApiKey, User] | None:
        query = select(ApiKey, User).join(User, User.id == ApiKey.user_id)
        row = (await self.session.execute(query.where(ApiKey.key_hash == key_hash))).first()
        return None if row is None else (row[0], row[1])

    async def touch(self, key_id: int, now: datetime, not_since: datetime) -> None:
        """Set last_used_at unless another request did so after `not_since`."""
        await self.session.execute(
            update(ApiKey)
            .where(ApiKey.id == key_id)
            .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= not_since))
            .values(last_used_at=now)
        )
