"""Periodic jobs: an APScheduler AsyncIOScheduler plus a database lease per job.

The lease row (`job_runs`) records when a job last ran, so a process that restarts more often
than the interval still runs it (catch-up at start-up), and lets one process at a time run it,
even with several workers or replicas.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import String, Text, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UTCDateTime, utcnow

logger = logging.getLogger(__name__)

# How long a lease protects a running job; a crashed holder frees it after this.
LEASE_SECONDS = 3600
# Delay of the catch-up run after start-up, so start-up itself stays fast.
CATCH_UP_DELAY_SECONDS = 10.0


class JobRun(Base):
    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    last_result: Mapped[str | None] = mapped_column(Text, default=None)


class JobLease:
    """Claims and releases the `job_runs` row of one job."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], name: str) -> None:
        self._sessions = sessions
        self.name = name

    async def last_run_at(self) -> datetime | None:
        async with self._sessions() as session:
            row = await session.get(JobRun, self.name)
            return row.last_run_at if row else None

    async def acquire(self, now: datetime | None = None) -> bool:
        """True if this caller now holds the lease; one atomic UPDATE decides between racers."""
        now = now or utcnow()
        async with self._sessions.begin() as session:
            try:
                async with session.begin_nested():
                    await session.execute(insert(JobRun).values(name=self.name))
            except IntegrityError:
                pass  # the row exists already
            result = await session.execute(
                update(JobRun)
                .where(JobRun.name == self.name)
                .where(or_(JobRun.locked_until.is_(None), JobRun.locked_until < now))
                .values(locked_until=now + timedelta(seconds=LEASE_SECONDS))
            )
            return bool(getattr(result, "rowcount", 0) == 1)

    async def release(self, *, result: str, ran: bool = True) -> None:
        values: dict[str, object] = {"locked_until": None, "last_result": result}
        if ran:
            values["last_run_at"] = utcnow()
        async with self._sessions.begin() as session:
            await session.execute(update(JobRun).where(JobRun.name == self.name).values(**values))


async def run_exclusive(lease: JobLease, job: Callable[[], Awaitable[str]]) -> str | None:
    """Run `job` under the lease; None if another process or task holds it."""
    if not await lease.acquire():
        logger.info("job %s is already running elsewhere; skipped", lease.name)
        return None
    try:
        result = await job()
    except BaseException as exc:
        # Also on cancellation (shutdown): a lease left behind would block the next
        # start-up's catch-up run for LEASE_SECONDS.
        await asyncio.shield(lease.release(result=f"failed: {type(exc).__name__}", ran=False))
        raise
    await lease.release(result=result)
    return result


async def is_due(lease: JobLease, interval: timedelta) -> bool:
    last = await lease.last_run_at()
    return last is None or utcnow() - last >= interval


def build_scheduler() -> AsyncIOScheduler:
    return AsyncIOScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})


async def schedule_periodic(
    scheduler: AsyncIOScheduler,
    lease: JobLease,
    job: Callable[[], Awaitable[str]],
    interval: timedelta,
) -> None:
    """Register `job` every `interval`, plus one run soon if the last one is older than that."""

    async def tick() -> None:
        try:
            await run_exclusive(lease, job)
        except Exception:
            logger.exception("job %s failed", lease.name)

    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=interval.total_seconds()),
        id=lease.name,
        replace_existing=True,
    )
    if await is_due(lease, interval):
        scheduler.add_job(
            tick,
            "date",
            run_date=utcnow() + timedelta(seconds=CATCH_UP_DELAY_SECONDS),
            id=f"{lease.name}:catch-up",
            replace_existing=True,
        )
