"""Collections: create, rename, delete them, manage their members.

Each method is its own short transaction. Membership changes start by touching the
collection's row, so concurrent changes to one collection are ordered (a row lock in
PostgreSQL, the write lock in SQLite) and the "at least one owner" check cannot race.

Deletion follows the documents' order: the collection and its documents are marked deleting
(committed; from then on they are invisible everywhere), then the vectors and the document
rows go, then the collection. A crash in between is finished at the next start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.collections.access import CollectionAccess, CollectionNotFound
from app.collections.models import Collection, CollectionMember, CollectionRole
from app.collections.repository import CollectionRepository, CollectionRow, MemberRow
from app.collections.schemas import CollectionCreate, CollectionUpdate
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound, PermissionDenied
from app.documents.service import DocumentService

logger = logging.getLogger(__name__)


class UserNotFound(NotFound):
    code = "user_not_found"
    default_detail = "No user has this e-mail address."


class AlreadyMember(Conflict):
    code = "already_member"
    default_detail = "This user is already a member of the collection."


class MemberNotFound(NotFound):
    code = "member_not_found"
    default_detail = "This user is not a member of the collection."


class LastOwner(Conflict):
    code = "last_owner"
    default_detail = "A collection keeps at least one owner: make someone else owner first."


class TooManyCollections(Conflict):
    code = "too_many_collections"
    default_detail = "The most collections one user may belong to (COLLECTION_MAX_PER_USER)."


class CollectionFull(Conflict):
    code = "collection_full"
    default_detail = "The collection has the most members allowed (COLLECTION_MAX_MEMBERS)."


class CollectionService:
    """Collections and their members; the caller's rights come from a `CollectionAccess`
    computed for the request (so a role change applies to the very next request)."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        documents: DocumentService,
        *,
        max_per_user: int,
        max_members: int,
    ) -> None:
        self.sessions = sessions
        self.documents = documents
        self.max_per_user = max_per_user
        self.max_members = max_members

    async def create(self, access: CollectionAccess, data: CollectionCreate) -> CollectionRow:
        if access.scoped:
            raise PermissionDenied("A collection-scoped API key cannot create collections.")
        async with self.sessions.begin() as session:
            repo = CollectionRepository(session)
            if await repo.count_memberships(access.user_id) >= self.max_per_user:
                raise TooManyCollections()
            now = utcnow()
            collection = await repo.add(
                Collection(
                    name=data.name, description=data.description, created_at=now, updated_at=now
                ),
                access.user_id,
            )
            return CollectionRow(collection, CollectionRole.OWNER, 0, 1)

    async def mine(self, access: CollectionAccess) -> list[CollectionRow]:
        async with self.sessions() as session:
            return await CollectionRepository(session).rows(dict(access.roles))

    async def get(self, access: CollectionAccess, collection_id: int) -> CollectionRow:
        role = access.role(collection_id)
        async with self.sessions() as session:
            rows = await CollectionRepository(session).rows({collection_id: role})
        if not rows:
            raise CollectionNotFound()
        return rows[0]

    async def update(
        self, access: CollectionAccess, collection_id: int, data: CollectionUpdate
    ) -> CollectionRow:
        access.require(collection_id, CollectionRole.OWNER)
        async with self.sessions.begin() as session:
            collection = await CollectionRepository(session).get(collection_id)
            if collection is None:
                raise CollectionNotFound()
            fields = data.model_dump(exclude_unset=True)
            if fields.get("name") is not None:
                collection.name = fields["name"]
            if "description" in fields:
                collection.description = fields["description"] or None
            collection.updated_at = utcnow()
        return await self.get(access, collection_id)

    async def delete(self, access: CollectionAccess, collection_id: int) -> None:
        """Delete the collection, its documents and their vectors (see the module docstring)."""
        access.require(collection_id, CollectionRole.OWNER)
        async with self.sessions.begin() as session:
            repo = CollectionRepository(session)
            if await repo.get(collection_id) is None:
                raise CollectionNotFound()
            await repo.mark_deleting([collection_id])
            document_ids = await self.documents.mark_collection_removal(session, [collection_id])
        await self.finish_deletion([collection_id], document_ids)

    async def finish_deletion(
        self, collection_ids: Sequence[int], document_ids: Sequence[int]
    ) -> None:
        """Steps two and three of a deletion already committed as `deleting`."""
        if document_ids:
            await self.documents.purge(document_ids)
        async with self.sessions.begin() as session:
            await CollectionRepository(session).delete(collection_ids)
        logger.info(
            "deleted %d collection(s) and %d document(s)", len(collection_ids), len(document_ids)
        )

    async def recover(self) -> int:
        """At start-up, after the documents' own recovery: finish collection deletions a
        crash interrupted. Returns how many."""
        async with self.sessions.begin() as session:
            ids = await CollectionRepository(session).deleting()
            document_ids = await self.documents.mark_collection_removal(session, ids)
        if ids:
            await self.finish_deletion(ids, document_ids)
        return len(ids)

    # --- members ---------------------------------------------------------------------

    async def members(self, access: CollectionAccess, collection_id: int) -> list[MemberRow]:
        access.role(collection_id)
        async with self.sessions() as session:
            return await CollectionRepository(session).members(collection_id)

    async def _lock(self, session: AsyncSession, collection_id: int) -> CollectionRepository:
        # First statement: a write, which orders concurrent membership changes (see above).
        result = await session.execute(
            update(Collection)
            .where(Collection.id == collection_id, Collection.deleting.is_(False))
            .values(updated_at=utcnow())
        )
        if getattr(result, "rowcount", 0) != 1:
            raise CollectionNotFound()
        return CollectionRepository(session)

    async def add_member(
        self, access: CollectionAccess, collection_id: int, email: str, role: CollectionRole
    ) -> MemberRow:
        access.require(collection_id, CollectionRole.OWNER)
        try:
            async with self.sessions.begin() as session:
                repo = await self._lock(session, collection_id)
                user = await repo.user_by_email(email)
                if user is None:
                    raise UserNotFound()
                if await repo.member(collection_id, user.id) is not None:
                    raise AlreadyMember()
                if await repo.count_members(collection_id) >= self.max_members:
                    raise CollectionFull()
                if await repo.count_memberships(user.id) >= self.max_per_user:
                    raise TooManyCollections(
                        "This user belongs to the most collections allowed "
                        "(COLLECTION_MAX_PER_USER)."
                    )
                member = await repo.add_member(
                    CollectionMember(
                        collection_id=collection_id,
                        user_id=user.id,
                        role=role,
                        created_at=utcnow(),
                    )
                )
                return MemberRow(user.id, user.email, user.username, role, member.created_at)
        except IntegrityError as exc:  # added concurrently (or the user was just deleted)
            raise AlreadyMember() from exc

    async def change_role(
        self, access: CollectionAccess, collection_id: int, user_id: int, role: CollectionRole
    ) -> MemberRow:
        access.require(collection_id, CollectionRole.OWNER)
        async with self.sessions.begin() as session:
            repo = await self._lock(session, collection_id)
            member = await repo.member(collection_id, user_id)
            if member is None:
                raise MemberNotFound()
            demoted = member.role == CollectionRole.OWNER and role != CollectionRole.OWNER
            if demoted and await repo.owners(collection_id) == [user_id]:
                raise LastOwner()
            member.role = role
            await session.flush()
        rows = await self.members(access, collection_id)
        return next(row for row in rows if row.user_id == user_id)

    async def remove_member(
        self, access: CollectionAccess, collection_id: int, user_id: int
    ) -> None:
        """An owner removes anyone; any member may leave. The last owner cannot leave."""
        role = access.role(collection_id)
        if user_id != access.user_id and role != CollectionRole.OWNER:
            raise PermissionDenied("Only owners can remove other members.")
        async with self.sessions.begin() as session:
            repo = await self._lock(session, collection_id)
            member = await repo.member(collection_id, user_id)
            if member is None:
                raise MemberNotFound()
            if member.role == CollectionRole.OWNER and await repo.owners(collection_id) == [
                user_id
            ]:
                raise LastOwner()
            await repo.remove_member(member)


async def mark_owner_removal(
    session: AsyncSession, documents: DocumentService, user_id: int
) -> list[int]:
    """Inside an account deletion's first transaction: the collections this user alone owns
    are marked deleting with their documents; returns those documents' ids. Idempotent (the
    user's memberships stay until its row goes), so a resumed deletion finds them again."""
    repo = CollectionRepository(session)
    ids = await repo.solely_owned(user_id)
    await repo.mark_deleting(ids)
    return await documents.mark_collection_removal(session, ids)


async def remove_solely_owned(session: AsyncSession, user_id: int) -> None:
    """Inside an account deletion's last transaction, before the user row goes: the
    collections it alone owned (their documents are purged by then). Its other memberships
    go with the user row (cascade); the documents it uploaded there stay."""
    repo = CollectionRepository(session)
    await repo.delete(await repo.solely_owned(user_id))
