"""Collections (team knowledge bases) and their members. Non-members get 404 for a
collection and everything in it, administrators included: no existence oracle."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.api.access import CollectionServiceDep, CurrentAccess
from app.api.deps import MAX_ID
from app.collections.access import CollectionNotFound
from app.collections.repository import CollectionRow, MemberRow
from app.collections.schemas import (
    CollectionCreate,
    CollectionRead,
    CollectionUpdate,
    MemberCreate,
    MemberRead,
    MemberUpdate,
)
from app.collections.service import (
    AlreadyMember,
    CollectionFull,
    LastOwner,
    MemberNotFound,
    TooManyCollections,
    UserNotFound,
)
from app.core.errors import (
    MalformedBody,
    NotAuthenticated,
    PermissionDenied,
    UpstreamUnavailable,
    error_responses,
)

router = APIRouter(prefix="/api/collections", tags=["collections"])

CollectionId = Annotated[int, Path(ge=1, le=MAX_ID)]
UserId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _read(row: CollectionRow) -> CollectionRead:
    c = row.collection
    return CollectionRead(
        id=c.id,
        name=c.name,
        description=c.description,
        role=row.role,
        created_at=c.created_at,
        documents=row.documents,
        members=row.members,
    )


def _member(row: MemberRow) -> MemberRead:
    return MemberRead.model_validate(row, from_attributes=True)


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=CollectionRead,
    responses=error_responses(
        MalformedBody, NotAuthenticated, PermissionDenied, TooManyCollections
    ),
)
async def create_collection(
    body: CollectionCreate, access: CurrentAccess, service: CollectionServiceDep
) -> CollectionRead:
    """Create a collection; you are its first owner."""
    return _read(await service.create(access, body))


@router.get("/", response_model=list[CollectionRead], responses=error_responses(NotAuthenticated))
async def list_collections(
    access: CurrentAccess, service: CollectionServiceDep
) -> list[CollectionRead]:
    """The collections you belong to, with your role in each, oldest first."""
    return [_read(row) for row in await service.mine(access)]


@router.get(
    "/{collection_id}/",
    response_model=CollectionRead,
    responses=error_responses(NotAuthenticated, CollectionNotFound),
)
async def get_collection(
    collection_id: CollectionId, access: CurrentAccess, service: CollectionServiceDep
) -> CollectionRead:
    return _read(await service.get(access, collection_id))


@router.patch(
    "/{collection_id}/",
    response_model=CollectionRead,
    responses=error_responses(
        MalformedBody, NotAuthenticated, PermissionDenied, CollectionNotFound
    ),
)
async def update_collection(
    collection_id: CollectionId,
    body: CollectionUpdate,
    access: CurrentAccess,
    service: CollectionServiceDep,
) -> CollectionRead:
    """Rename it or change its description (owners)."""
    return _read(await service.update(access, collection_id, body))


@router.delete(
    "/{collection_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        NotAuthenticated, PermissionDenied, CollectionNotFound, UpstreamUnavailable
    ),
)
async def delete_collection(
    collection_id: CollectionId, access: CurrentAccess, service: CollectionServiceDep
) -> Response:
    """Delete the collection with its documents and their vectors (owners)."""
    await service.delete(access, collection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{collection_id}/members/",
    response_model=list[MemberRead],
    responses=error_responses(NotAuthenticated, CollectionNotFound),
)
async def list_members(
    collection_id: CollectionId, access: CurrentAccess, service: CollectionServiceDep
) -> list[MemberRead]:
    return [_member(row) for row in await service.members(access, collection_id)]


@router.post(
    "/{collection_id}/members/",
    status_code=status.HTTP_201_CREATED,
    response_model=MemberRead,
    responses=error_responses(
        MalformedBody,
        NotAuthenticated,
        PermissionDenied,
        CollectionNotFound,
        UserNotFound,
        AlreadyMember,
        CollectionFull,
        TooManyCollections,
    ),
)
async def add_member(
    collection_id: CollectionId,
    body: MemberCreate,
    access: CurrentAccess,
    service: CollectionServiceDep,
) -> MemberRead:
    """Add a user by e-mail address with a role (owners)."""
    return _member(await service.add_member(access, collection_id, body.email, body.role))


@router.patch(
    "/{collection_id}/members/{user_id}/",
    response_model=MemberRead,
    responses=error_responses(
        MalformedBody,
        NotAuthenticated,
        PermissionDenied,
        CollectionNotFound,
        MemberNotFound,
        LastOwner,
    ),
)
async def change_role(
    collection_id: CollectionId,
    user_id: UserId,
    body: MemberUpdate,
    access: CurrentAccess,
    service: CollectionServiceDep,
) -> MemberRead:
    """Change a member's role (owners); the last owner cannot be demoted."""
    return _member(await service.change_role(access, collection_id, user_id, body.role))


@router.delete(
    "/{collection_id}/members/{user_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        NotAuthenticated, PermissionDenied, CollectionNotFound, MemberNotFound, LastOwner
    ),
)
async def remove_member(
    collection_id: CollectionId,
    user_id: UserId,
    access: CurrentAccess,
    service: CollectionServiceDep,
) -> Response:
    """Remove a member (owners), or leave (any member). The last owner cannot leave."""
    await service.remove_member(access, collection_id, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
