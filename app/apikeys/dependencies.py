from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends

from app.apikeys.hashing import derive_pepper
from app.apikeys.repository import ApiKeyRepository
from app.apikeys.service import ApiKeyPrincipal, ApiKeyService, authenticate_api_key
from app.deps import SessionDep, StateDep
from app.lifespan import State


async def resolve_api_key(state: State, token: str) -> ApiKeyPrincipal:
    """The bearer `sk-...` key's owner (used by `get_current_user` and the /v1 routes)."""
    settings = state["settings"]
    return await authenticate_api_key(
        state["sessions"],
        token,
        pepper=derive_pepper(settings),
        touch_interval=timedelta(seconds=settings.api_key_last_used_interval_seconds),
    )


def get_api_key_service(session: SessionDep, state: StateDep) -> ApiKeyService:
    settings = state["settings"]
    return ApiKeyService(
        ApiKeyRepository(session),
        pepper=derive_pepper(settings),
        max_per_user=settings.api_key_max_per_user,
    )


ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]
