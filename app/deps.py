"""Shared `Annotated` dependencies. Long-lived resources come from the lifespan's State."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.db import MAX_ID as MAX_ID  # re-exported for Path/Query bounds
from app.lifespan import State


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
