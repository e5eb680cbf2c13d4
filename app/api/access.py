"""The caller's collection access for one request: computed from the principal by one query
after authentication, so removing a member, lowering a role or deleting a collection applies
to the very next request of every token and key already issued."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import StateDep
from app.api.principal import CurrentPrincipal, still_valid
from app.api.state import State
from app.auth.principal import Principal
from app.collections.access import CollectionAccess, load_access
from app.collections.service import CollectionService


async def get_access(state: StateDep, principal: CurrentPrincipal) -> CollectionAccess:
    return await load_access(state["sessions"], principal)


CurrentAccess = Annotated[CollectionAccess, Depends(get_access)]


async def still_reaches(state: State, principal: Principal, collection_ids: frozenset[int]) -> bool:
    """For a stream that outlives the moment it retrieved: the credential still holds and the
    caller still reaches every collection the answer may draw on (a member removed, or a
    collection deleted, mid-answer ends the stream). One or two short queries."""
    if not await still_valid(state, principal):
        return False
    if not collection_ids:
        return True
    access = await load_access(state["sessions"], principal)
    return collection_ids <= access.roles.keys()


async def get_collection_service(state: StateDep) -> CollectionService:
    settings = state["settings"]
    return CollectionService(
        state["sessions"],
        state["documents"],
        max_per_user=settings.collection_max_per_user,
        max_members=settings.collection_max_members,
    )


CollectionServiceDep = Annotated[CollectionService, Depends(get_collection_service)]
