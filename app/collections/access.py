"""What one request's caller may reach: their role in each collection, computed per request by
one query (never carried in a token), narrowed by a collection-scoped API key."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.principal import Principal
from app.collections.models import CollectionRole
from app.collections.repository import CollectionRepository
from app.core.errors import NotFound, PermissionDenied
from app.rag.protocols import Visibility


class CollectionNotFound(NotFound):
    """Also for collections that exist but the caller is not a member of: no existence
    oracle, for administrators too."""

    code = "collection_not_found"
    default_detail = "Collection not found."


@dataclass(frozen=True, slots=True)
class CollectionAccess:
    """The caller's roles (`roles`: collection id -> role, already narrowed to the key's
    scope) and whether the credential is a collection-scoped key, which sees those
    collections alone (no private, no shared documents)."""

    user_id: int
    roles: Mapping[int, CollectionRole]
    scoped: bool = False

    def role(self, collection_id: int) -> CollectionRole:
        """The caller's role; `CollectionNotFound` when they are not a member."""
        role = self.roles.get(collection_id)
        if role is None:
            raise CollectionNotFound()
        return role

    def require(self, collection_id: int, at_least: CollectionRole) -> CollectionRole:
        """The caller's role if it is at least `at_least`: 404 for non-members, 403 below."""
        role = self.role(collection_id)
        if not role.at_least(at_least):
            raise PermissionDenied(f"This needs the {at_least} role in the collection.")
        return role

    def visibility(self, collection_ids: Iterable[int] | None = None) -> Visibility:
        """What retrieval may see: the given collections alone (each must be one of the
        caller's, else 404), or else everything the caller can see."""
        if collection_ids is not None:
            wanted = frozenset(collection_ids)
            for collection_id in sorted(wanted):
                self.role(collection_id)
            return Visibility.of_collections(wanted)
        if self.scoped:
            return Visibility.of_collections(self.roles)
        return Visibility.of_user(self.user_id, self.roles)


async def load_access(
    sessions: async_sessionmaker[AsyncSession], principal: Principal
) -> CollectionAccess:
    """The caller's `CollectionAccess`, in a short session of its own."""
    async with sessions() as session:
        roles = await CollectionRepository(session).roles_of(principal.user.id)
    scope = principal.collection_ids
    if scope is not None:
        # A member removed since the key was made loses the collection here too.
        roles = {cid: role for cid, role in roles.items() if cid in scope}
    return CollectionAccess(principal.user.id, roles, scoped=scope is not None)
