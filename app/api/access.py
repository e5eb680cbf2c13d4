"""The caller's collection access for one request: computed from the principal by one query
after authentication, so removing a member, lowering a role or deleting a collection applies
to the very next request of every token and key already issued."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from app.api.deps import StateDep
from app.api.principal import CurrentPrincipal
from app.collections.access import CollectionAccess, load_access
from app.collections.service import CollectionService


async def get_access(state: StateDep, principal: CurrentPrincipal) -> CollectionAccess:
    return await load_access(state["sessions"], principal)


CurrentAccess = Annotated[CollectionAccess, Depends(get_access)]


async def get_collection_service(state: StateDep) -> CollectionService:
    settings = state["settings"]
    return CollectionService(
        state["sessions"],
        state["documents"],
        max_per_user=settings.collection_max_per_user,
        max_members=settings.collection_max_members,
    )


CollectionServiceDep = Annotated[CollectionService, Depends(get_collection_service)]
