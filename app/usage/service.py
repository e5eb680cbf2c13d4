"""Usage reports: tokens per UTC day, for one user or for every user."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.core.db import utcnow
from app.usage.meter import UsageMeter
from app.usage.repository import DailyTotal, UsageRepository
from app.usage.schemas import BudgetRead, DailyUsage, MyUsage, UsageReport, UsageTotals, UserUsage


def _totals(rows: Iterable[DailyTotal]) -> UsageTotals:
    rows = list(rows)
    prompt = sum(r.prompt_tokens for r in rows)
    completion = sum(r.completion_tokens for r in rows)
    return UsageTotals(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        turns=sum(r.turns for r in rows),
        estimated=any(r.estimated for r in rows),
    )


def _day(row: DailyTotal) -> DailyUsage:
    return DailyUsage(
        day=row.day,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        total_tokens=row.prompt_tokens + row.completion_tokens,
        turns=row.turns,
        estimated=row.estimated,
    )


class UsageService:
    """Reads in the request's session; "the last `days` days" includes today (UTC)."""

    def __init__(self, session: AsyncSession, meter: UsageMeter) -> None:
        self.usage = UsageRepository(session)
        self.meter = meter

    def since(self, days: int) -> date:
        return self.meter.clock().date() - timedelta(days=days - 1)

    async def mine(self, user: User, *, days: int) -> MyUsage:
        since = self.since(days)
        rows = await self.usage.daily(since=since, user_id=user.id)
        today = self.meter.clock().date()
        used = sum(r.prompt_tokens + r.completion_tokens for r in rows if r.day == today)
        budget = self.meter.budget_of(user)
        return MyUsage(
            since=since,
            totals=_totals(rows),
            days=[_day(r) for r in rows],
            budget=BudgetRead(
                daily_token_budget=budget,
                used_today=used,
                remaining_today=max(0, budget - used) if budget else None,
            ),
        )

    async def report(self, *, days: int, user_id: int | None) -> UsageReport:
        """Per user and per day, the heaviest users first."""
        since = self.since(days)
        rows = await self.usage.daily(since=since, user_id=user_id)
        by_user: dict[int, list[DailyTotal]] = {}
        for row in rows:
            by_user.setdefault(row.user_id, []).append(row)
        emails = await self.usage.emails(list(by_user))
        users = [
            UserUsage(
                user_id=uid,
                email=emails.get(uid),
                totals=_totals(user_rows),
                days=[_day(r) for r in user_rows],
            )
            for uid, user_rows in by_user.items()
        ]
        users.sort(key=lambda u: (-u.totals.total_tokens, u.user_id))
        return UsageReport(since=since, totals=_totals(rows), users=users)


async def purge_usage(
    sessions: async_sessionmaker[AsyncSession],
    *,
    retention_days: int,
    batch_size: int,
    today: date | None = None,
) -> int:
    """Delete token usage records of days older than `retention_days`, in short batches."""
    before = (today or utcnow().date()) - timedelta(days=retention_days)
    total = 0
    while True:
        async with sessions.begin() as session:
            deleted = await UsageRepository(session).purge(before, batch_size=batch_size)
        total += deleted
        if deleted < batch_size:
            return total
