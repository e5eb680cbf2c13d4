"""`GET /api/me/usage/`: your tokens per UTC day and what is left of today's budget."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api.deps import SessionDep, SettingsDep, StateDep
from app.api.principal import CurrentUser
from app.core.errors import InvalidInput, NotAuthenticated, error_responses
from app.usage.schemas import MyUsage
from app.usage.service import UsageService

router = APIRouter(prefix="/api/me", tags=["usage"])

Days = Annotated[int, Query(ge=1, description="The last N UTC days, today included.")]


def check_days(days: int, max_days: int) -> int:
    if days > max_days:
        raise InvalidInput(f"days must be at most {max_days} (USAGE_MAX_DAYS).")
    return days


@router.get(
    "/usage/", response_model=MyUsage, responses=error_responses(NotAuthenticated, InvalidInput)
)
async def my_usage(
    user: CurrentUser,
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    days: Days = 30,
) -> MyUsage:
    """Your prompt and completion tokens per UTC day (days with a turn, newest first), their
    totals, and today's budget. `estimated` marks totals that include our own count of tokens
    the LLM did not report."""
    service = UsageService(session, state["usage"])
    return await service.mine(user, days=check_days(days, settings.usage_max_days))
