from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Far above any day's use, below every integer column's range.
MAX_DAILY_TOKEN_BUDGET = 10**12


class AdminUserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    username: str
    is_active: bool
    is_admin: bool
    daily_token_budget: int | None = Field(
        description="The user's own daily token budget; null follows USER_DAILY_TOKEN_BUDGET, "
        "0 is no limit."
    )
    created_at: datetime


class AdminUserDetail(AdminUserRead):
    effective_daily_token_budget: int = Field(description="What applies today; 0: no limit.")
    documents: int
    conversations: int
    messages: int
    api_keys: int
    tokens_today: int
    tokens_total: int = Field(description="Over the usage records kept (USAGE_RETENTION_DAYS).")


class AdminUserPage(BaseModel):
    items: list[AdminUserRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class AdminUserUpdate(BaseModel):
    """Only the fields sent change; `daily_token_budget: null` returns the user to the
    default budget."""

    model_config = ConfigDict(extra="forbid")

    is_active: bool | None = None
    is_admin: bool | None = None
    daily_token_budget: int | None = Field(default=None, ge=0, le=MAX_DAILY_TOKEN_BUDGET)


class AuditRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_id: int | None = Field(description="Null once the administrator's account is gone.")
    actor_email: str
    action: str
    target_type: str
    target_id: int | None
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
