from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class UsageTotals(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    turns: int
    estimated: bool = Field(
        description="Some of these tokens were counted by our estimate, not reported by the LLM."
    )


class DailyUsage(UsageTotals):
    day: date = Field(description="A UTC day.")


class BudgetRead(BaseModel):
    daily_token_budget: int = Field(description="0: no limit.")
    used_today: int
    remaining_today: int | None = Field(description="Null without a limit.")


class MyUsage(BaseModel):
    since: date
    totals: UsageTotals
    days: list[DailyUsage] = Field(description="Days with any turn, newest first.")
    budget: BudgetRead


class UserUsage(BaseModel):
    user_id: int
    email: str | None = Field(description="Null once the account is deleted.")
    totals: UsageTotals
    days: list[DailyUsage]


class UsageReport(BaseModel):
    since: date
    totals: UsageTotals
    users: list[UserUsage] = Field(description="Heaviest users first.")
