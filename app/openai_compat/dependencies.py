from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.apikeys.dependencies import resolve_api_key
from app.apikeys.hashing import looks_like_api_key
from app.auth.dependencies import get_current_user
from app.auth.models import User
from app.deps import StateDep
from app.errors import NotAuthenticated

# What the OpenAI SDKs send: `Authorization: Bearer <api_key>`.
bearer = HTTPBearer(
    auto_error=False,
    description="A personal API key (`sk-...`, from POST /api/keys/) or a JWT access token.",
)


@dataclass(frozen=True, slots=True)
class Caller:
    user: User
    # The API key the request carried; None for a JWT access token.
    key_id: int | None


async def get_caller(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise NotAuthenticated("Missing API key: send `Authorization: Bearer sk-...`.")
    token = credentials.credentials
    if looks_like_api_key(token):
        principal = await resolve_api_key(state, token)
        return Caller(principal.user, principal.key_id)
    return Caller(await get_current_user(state, token), None)


CallerDep = Annotated[Caller, Depends(get_caller)]
