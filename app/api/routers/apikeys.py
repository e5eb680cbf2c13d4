from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from app.admin.service import AuditLog
from app.api.deps import MAX_ID, ApiKeyServiceDep
from app.api.principal import CurrentUser, LoginTokenPrincipal
from app.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, ApiKeyScoped
from app.apikeys.service import ApiKeyNotFound, TooManyApiKeys
from app.collections.access import CollectionNotFound
from app.core.errors import (
    InvalidInput,
    MalformedBody,
    NotAuthenticated,
    PermissionDenied,
    error_responses,
)

router = APIRouter(prefix="/api/keys", tags=["api keys"])


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    responses=error_responses(
        MalformedBody,
        NotAuthenticated,
        PermissionDenied,
        CollectionNotFound,
        TooManyApiKeys,
        InvalidInput,
    ),
)
async def create_key(
    body: ApiKeyCreate, principal: LoginTokenPrincipal, service: ApiKeyServiceDep
) -> ApiKeyCreated:
    """Create a personal API key (`sk-...`) for `Authorization: Bearer`. It is shown once.
    Your revoked and expired keys are deleted now (they can never work again). Needs a login
    token: a leaked key must not mint keys that outlive its revocation.

    With `collection_ids` (collections you belong to), the key retrieves only from those
    collections, and only while you remain a member: a team bot's key. With
    `"scopes": ["admin"]` (administrators only) it may call /api/admin/ (audited)."""
    key, plaintext = await service.create(principal.user, body)
    if key.scopes:  # an administrator's key that can call /api/admin/: an admin action
        await AuditLog(service.keys.session).record(
            principal, "apikey.create", "api_key", key.id, {"scopes": key.scopes}
        )
    return ApiKeyCreated(
        **ApiKeyRead.model_validate(key).model_dump(),
        collection_ids=sorted(set(body.collection_ids)) if body.collection_ids else None,
        key=plaintext,
    )


@router.get("/", response_model=list[ApiKeyScoped], responses=error_responses(NotAuthenticated))
async def list_keys(user: CurrentUser, service: ApiKeyServiceDep) -> list[ApiKeyScoped]:
    """Your keys that are not revoked (expired ones included), oldest first."""
    keys = await service.list(user)
    scopes = await service.scopes(keys)
    return [
        ApiKeyScoped(
            **ApiKeyRead.model_validate(k).model_dump(),
            collection_ids=scopes.get(k.id, []) if k.collection_scoped else None,
        )
        for k in keys
    ]


@router.delete(
    "/{key_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(NotAuthenticated, ApiKeyNotFound),
)
async def revoke_key(
    key_id: Annotated[int, Path(ge=1, le=MAX_ID)], user: CurrentUser, service: ApiKeyServiceDep
) -> None:
    """Revoke a key: requests carrying it get 401 from now on."""
    await service.revoke(user, key_id)
