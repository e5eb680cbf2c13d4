from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.collections.models import Collection, CollectionMember, CollectionRole
from app.documents.models import Document, DocumentStatus


@dataclass(frozen=True, slots=True)
class CollectionRow:
    collection: Collection
    role: CollectionRole
    documents: int
    members: int


@dataclass(frozen=True, slots=True)
class MemberRow:
    user_id: int
    email: str
    username: str
    role: CollectionRole
    created_at: object


class CollectionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def roles_of(self, user_id: int) -> dict[int, CollectionRole]:
        """The user's role in each collection they belong to (one indexed query)."""
        query = (
            select(CollectionMember.collection_id, CollectionMember.role)
            .join(Collection, Collection.id == CollectionMember.collection_id)
            .where(CollectionMember.user_id == user_id, Collection.deleting.is_(False))
        )
        rows = (await self.session.execute(query)).all()
        return {row.collection_id: CollectionRole(row.role) for row in rows}

    async def get(self, collection_id: int) -> Collection | None:
        collection = await self.session.get(Collection, collection_id)
        return None if collection is None or collection.deleting else collection

    async def add(self, collection: Collection, owner_id: int) -> Collection:
        self.session.add(collection)
        await self.session.flush()
        self.session.add(
            CollectionMember(
                collection_id=collection.id, user_id=owner_id, role=CollectionRole.OWNER
            )
        )
        await self.session.flush()
        return collection

    async def rows(self, roles: dict[int, CollectionRole]) -> list[CollectionRow]:
        """The collections in `roles` with their document and member counts, oldest first."""
        if not roles:
            return []
        ids = list(roles)
        documents: dict[int | None, int] = {
            row[0]: row[1]
            for row in (
                await self.session.execute(
                    select(Document.collection_id, func.count(Document.id))
                    .where(
                        Document.collection_id.in_(ids),
                        Document.status != DocumentStatus.DELETING,
                    )
                    .group_by(Document.collection_id)
                )
            ).all()
        }
        members: dict[int, int] = {
            row[0]: row[1]
            for row in (
                await self.session.execute(
                    select(CollectionMember.collection_id, func.count())
                    .where(CollectionMember.collection_id.in_(ids))
                    .group_by(CollectionMember.collection_id)
                )
            ).all()
        }
        collections = (
            await self.session.execute(
                select(Collection)
                .where(Collection.id.in_(ids), Collection.deleting.is_(False))
                .order_by(Collection.id)
            )
        ).scalars()
        return [
            CollectionRow(c, roles[c.id], int(documents.get(c.id, 0)), int(members.get(c.id, 0)))
            for c in collections
        ]

    async def members(self, collection_id: int) -> list[MemberRow]:
        query = (
            select(CollectionMember, User.email, User.username)
            .join(User, User.id == CollectionMember.user_id)
            .where(CollectionMember.collection_id == collection_id)
            .order_by(CollectionMember.created_at, CollectionMember.user_id)
        )
        return [
            MemberRow(m.user_id, email, username, CollectionRole(m.role), m.created_at)
            for m, email, username in (await self.session.execute(query)).all()
        ]

    async def member(self, collection_id: int, user_id: int) -> CollectionMember | None:
        return await self.session.get(CollectionMember, (collection_id, user_id))

    async def add_member(self, member: CollectionMember) -> CollectionMember:
        self.session.add(member)
        await self.session.flush()
        return member

    async def remove_member(self, member: CollectionMember) -> None:
        await self.session.delete(member)
        await self.session.flush()

    async def count_members(self, collection_id: int) -> int:
        query = select(func.count()).where(CollectionMember.collection_id == collection_id)
        return int((await self.session.execute(query)).scalar_one())

    async def count_memberships(self, user_id: int) -> int:
        query = select(func.count()).where(CollectionMember.user_id == user_id)
        return int((await self.session.execute(query)).scalar_one())

    async def owners(self, collection_id: int, *, lock: bool = False) -> list[int]:
        """The owners' user ids; with `lock`, their rows are locked (PostgreSQL) so two
        owners demoting each other at once cannot leave the collection without one."""
        query = select(CollectionMember.user_id).where(
            CollectionMember.collection_id == collection_id,
            CollectionMember.role == CollectionRole.OWNER,
        )
        if lock:
            query = query.with_for_update()
        return list((await self.session.execute(query)).scalars())

    async def user_by_email(self, email: str) -> User | None:
        query = select(User).where(User.email == email.strip().lower(), User.is_active.is_(True))
        return (await self.session.execute(query)).scalar_one_or_none()

    async def solely_owned(self, user_id: int) -> list[int]:
        """Collections whose only owner is this user: they go with the account."""
        owned = select(CollectionMember.collection_id).where(
            CollectionMember.user_id == user_id, CollectionMember.role == CollectionRole.OWNER
        )
        other_owners = select(CollectionMember.collection_id).where(
            CollectionMember.user_id != user_id, CollectionMember.role == CollectionRole.OWNER
        )
        query = select(Collection.id).where(
            Collection.id.in_(owned), Collection.id.not_in(other_owners)
        )
        return list((await self.session.execute(query.order_by(Collection.id))).scalars())

    async def mark_deleting(self, collection_ids: Sequence[int]) -> None:
        for collection_id in collection_ids:
            collection = await self.session.get(Collection, collection_id)
            if collection is not None:
                collection.deleting = True
        await self.session.flush()

    async def deleting(self) -> list[int]:
        query = select(Collection.id).where(Collection.deleting.is_(True))
        return list((await self.session.execute(query)).scalars())

    async def delete(self, collection_ids: Sequence[int]) -> None:
        if collection_ids:
            await self.session.execute(
                delete(Collection).where(Collection.id.in_(list(collection_ids)))
            )
