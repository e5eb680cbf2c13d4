from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, status

from app.apikeys.dependencies import ApiKeyServiceDep
from app.apikeys.hashing import looks_like_api_key
from app.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from app.apikeys.service import ApiKeyNotFound, TooManyApiKeys
from app.auth.dependencies import CurrentUser, oauth2_scheme
from app.deps import MAX_ID
from app.errors import (
    InvalidInput,
    MalformedBody,
    NotAuthenticated,
    PermissionDenied,
    error_responses,
)

router = APIRouter(prefix="/api/keys", tags=["api keys"])


async def require_login_token(token: Annotated[str | None, Depends(oauth2_scheme)]) -> None:
    # A leaked key must not be able to mint keys that outlive its revocation.
    if token and looks_like_api_key(token):
        raise PermissionDenied("API keys cannot create API keys; use a login token.")


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    dependencies=[Depends(require_login_token)],
    responses=error_responses(
        MalformedBody, NotAuthenticated, PermissionDenied, TooManyApiKeys, InvalidInput
    ),
)
async def create_key(
    body: ApiKeyCreate, user: CurrentUser, service: ApiKeyServiceDep
) -> ApiKeyCreated:
    """Create a personal API key (`sk-...`) for `Authorization: Bearer`. It is shown once.
    Your revoked and expired keys are deleted now (they can never work again)."""
    key, plaintext = await service.create(user, body)
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=plaintext)


@router.get("/", response_model=list[ApiKeyRead], responses=error_responses(NotAuthenticated))
async def list_keys(user: CurrentUser, service: ApiKeyServiceDep) -> list[ApiKeyRead]:
    """Your keys that are not revoked (expired ones included), oldest first."""
    return [ApiKeyRead.model_validate(k) for k in await service.list(user)]


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
