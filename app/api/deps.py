"""Shared `Annotated` dependencies: the request's session, settings and the services routes
take. Long-lived resources come from the lifespan's State."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.state import State
from app.apikeys.hashing import derive_pepper
from app.apikeys.repository import ApiKeyRepository
from app.apikeys.service import ApiKeyService
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.service import AuthService
from app.core.config import Settings
from app.core.db import MAX_ID as MAX_ID  # re-exported for Path/Query bounds


# The dependencies below are `async def` although they never await: FastAPI runs a plain
# `def` dependency in its thread pool, a thread hop per call on every request.
async def get_state(request: Request) -> State:
    return cast(State, request.state)


StateDep = Annotated[State, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """One session per request: committed when the endpoint returns, rolled back if it raises."""
    async with state["sessions"]() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_settings(state: StateDep) -> Settings:
    return state["settings"]


# scope="function": the commit happens before the response is sent, so a 2xx means committed.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def _no_store(response: Response) -> None:
    # Credentials in a response body (tokens, a new API key) must not be kept by any cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


NoStore = Depends(_no_store)


async def get_auth_service(session: SessionDep, state: StateDep) -> AuthService:
    settings = state["settings"]
    return AuthService(
        UserRepository(session),
        RefreshTokenRepository(session),
        state["hasher"],
        state["tokens"],
        access_lifetime=settings.access_token_lifetime,
        refresh_lifetime=settings.refresh_token_lifetime,
    )


async def get_api_key_service(session: SessionDep, state: StateDep) -> ApiKeyService:
    settings = state["settings"]
    return ApiKeyService(
        ApiKeyRepository(session),
        pepper=derive_pepper(settings),
        max_per_user=settings.api_key_max_per_user,
    )


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
ApiKeyServiceDep = Annotated[ApiKeyService, Depends(get_api_key_service)]
