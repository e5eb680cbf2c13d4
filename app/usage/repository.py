from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.usage.models import TokenReservation, TokenUsage


@dataclass(frozen=True, slots=True)
class DailyTotal:
    day: date
    user_id: int
    prompt_tokens: int
    completion_tokens: int
    turns: int
    estimated: bool  # some of the day's turns were counted by our estimate


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock_user(self, user_id: int, now: datetime) -> bool:
        """Start the transaction that decides whether a turn may reserve tokens: drop the
        user's lapsed reservations (a write first, so SQLite's busy timeout orders concurrent
        deciders instead of failing one) and lock the user's row (PostgreSQL: one decider per
        user at a time; SQLite already has one writer). False when the user no longer exists."""
        await self.session.execute(
            delete(TokenReservation).where(
                TokenReservation.user_id == user_id, TokenReservation.expires_at <= now
            )
        )
        locked = await self.session.execute(
            select(User.id).where(User.id == user_id).with_for_update()
        )
        return locked.first() is not None

    async def spent(self, user_id: int, day: date) -> int:
        query = select(
            func.coalesce(func.sum(TokenUsage.prompt_tokens + TokenUsage.completion_tokens), 0)
        ).where(TokenUsage.user_id == user_id, TokenUsage.day == day)
        return int((await self.session.execute(query)).scalar_one())

    async def reserved(self, user_id: int, day: date, now: datetime) -> int:
        query = select(func.coalesce(func.sum(TokenReservation.tokens), 0)).where(
            TokenReservation.user_id == user_id,
            TokenReservation.day == day,
            TokenReservation.expires_at > now,
        )
        return int((await self.session.execute(query)).scalar_one())

    async def add_reservation(self, reservation: TokenReservation) -> int:
        self.session.add(reservation)
        await self.session.flush()
        return reservation.id

    async def delete_reservation(self, reservation_id: int) -> None:
        await self.session.execute(
            delete(TokenReservation).where(TokenReservation.id == reservation_id)
        )

    async def add_usage(self, record: TokenUsage) -> None:
        self.session.add(record)
        await self.session.flush()

    async def daily(self, *, since: date, user_id: int | None = None) -> list[DailyTotal]:
        """Totals per user and UTC day from `since` on, newest day first."""
        query = (
            select(
                TokenUsage.day,
                TokenUsage.user_id,
                func.sum(TokenUsage.prompt_tokens),
                func.sum(TokenUsage.completion_tokens),
                func.count(TokenUsage.id),
                func.max(case((TokenUsage.estimated, 1), else_=0)),
            )
            .where(TokenUsage.day >= since)
            .group_by(TokenUsage.day, TokenUsage.user_id)
            .order_by(TokenUsage.day.desc(), TokenUsage.user_id)
        )
        if user_id is not None:
            query = query.where(TokenUsage.user_id == user_id)
        rows = (await self.session.execute(query)).all()
        return [
            DailyTotal(row[0], row[1], int(row[2]), int(row[3]), int(row[4]), bool(row[5]))
            for row in rows
        ]

    async def totals(self, user_ids: Sequence[int]) -> dict[int, int]:
        """All-time prompt + completion tokens per user (what retention has kept)."""
        if not user_ids:
            return {}
        query = (
            select(
                TokenUsage.user_id,
                func.sum(TokenUsage.prompt_tokens + TokenUsage.completion_tokens),
            )
            .where(TokenUsage.user_id.in_(user_ids))
            .group_by(TokenUsage.user_id)
        )
        return {row[0]: int(row[1]) for row in (await self.session.execute(query)).all()}

    async def emails(self, user_ids: Sequence[int]) -> dict[int, str]:
        if not user_ids:
            return {}
        query = select(User.id, User.email).where(User.id.in_(user_ids))
        return {row[0]: row[1] for row in (await self.session.execute(query)).all()}

    async def purge(self, before: date, *, batch_size: int) -> int:
        """Delete one batch of usage records older than `before`; how many."""
        ids = (
            select(TokenUsage.id)
            .where(TokenUsage.day < before)
            .order_by(TokenUsage.id)
            .limit(batch_size)
            .scalar_subquery()
        )
        result = await self.session.execute(
            delete(TokenUsage).where(TokenUsage.id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
        return int(getattr(result, "rowcount", 0))
