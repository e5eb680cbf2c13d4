"""The retention purge, the job lease in `job_runs`, and the scheduler that runs them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.chat.retention import JOB_NAME, purge_old_messages
from app.core.db import utcnow
from app.core.scheduler import (
    LEASE_SECONDS,
    JobLease,
    JobRun,
    build_scheduler,
    is_due,
    run_exclusive,
    schedule_periodic,
)
from tests.conftest import AppFactory

RETENTION_DAYS = 30
OLD = timedelta(days=RETENTION_DAYS + 1)
RECENT = timedelta(days=RETENTION_DAYS - 1)
JOB = "test-job"


async def add_user(sessions: async_sessionmaker[AsyncSession], email: str) -> int:
    async with sessions.begin() as session:
        user = User(email=email, username=email.split("@")[0], password_hash="x")
        session.add(user)
        await session.flush()
        return user.id


async def add_messages(
    sessions: async_sessionmaker[AsyncSession], user_id: int, age: timedelta, count: int
) -> list[int]:
    async with sessions.begin() as session:
        conversation = Conversation(owner_id=user_id, title="t", updated_at=utcnow() - age)
        session.add(conversation)
        await session.flush()
        messages = [
            ChatMessage(
                user_id=user_id,
                conversation_id=conversation.id,
                role="user",
                content=f"m{i}",
                timestamp=utcnow() - age,
            )
            for i in range(count)
        ]
        session.add_all(messages)
        await session.flush()
        return [m.id for m in messages]


async def message_ids(sessions: async_sessionmaker[AsyncSession]) -> set[int]:
    async with sessions() as session:
        return set((await session.scalars(select(ChatMessage.id))).all())


async def job_run(sessions: async_sessionmaker[AsyncSession], name: str = JOB) -> JobRun | None:
    async with sessions() as session:
        return await session.get(JobRun, name)


async def put_job_run(sessions: async_sessionmaker[AsyncSession], **values: Any) -> None:
    async with sessions.begin() as session:
        session.add(JobRun(name=JOB, **values))


@contextmanager
def deletes_of_messages(engine: AsyncEngine) -> Iterator[list[int]]:
    """Row counts of every DELETE on chat_messages sent to the database while active."""
    rowcounts: list[int] = []

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM CHAT_MESSAGES"):
            rowcounts.append(cursor.rowcount)

    event.listen(engine.sync_engine, "after_cursor_execute", after)
    try:
        yield rowcounts
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", after)


async def test_purge_old_and_recent_messages_deletes_only_old(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ada, bob = await add_user(sessions, "ada@example.com"), await add_user(sessions, "bob@x.org")
    await add_messages(sessions, ada, OLD, 3)
    await add_messages(sessions, bob, OLD, 2)
    kept = await add_messages(sessions, ada, RECENT, 2) + await add_messages(
        sessions, bob, RECENT, 1
    )

    await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=100)

    assert await message_ids(sessions) == set(kept)


async def test_purge_old_messages_returns_deleted_count(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ada = await add_user(sessions, "ada@example.com")
    await add_messages(sessions, ada, OLD, 4)
    await add_messages(sessions, ada, RECENT, 3)

    deleted = await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=100)

    assert deleted == 4


async def test_purge_more_rows_than_batch_deletes_in_bounded_batches(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    ada = await add_user(sessions, "ada@example.com")
    await add_messages(sessions, ada, OLD, 30)
    engine: AsyncEngine = sessions.kw["bind"]

    with deletes_of_messages(engine) as rowcounts:
        deleted = await purge_old_messages(sessions, retention_days=RETENTION_DAYS, batch_size=7)

    assert deleted == 30
    assert await message_ids(sessions) == set()
    assert len(rowcounts) == math.ceil(30 / 7)
    assert all(n <= 7 for n in rowcounts), rowcounts


async def test_acquire_held_lease_returns_false_until_released(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = JobLease(sessions, JOB)

    assert await lease.acquire() is True
    assert await lease.acquire() is False
    await lease.release(result="ok")
    assert await lease.acquire() is True


async def test_acquire_expired_lease_takes_it_over(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # A holder that crashed: its lease ended a minute ago and nobody released it.
    await put_job_run(sessions, locked_until=utcnow() - timedelta(minutes=1))

    taken = await JobLease(sessions, JOB).acquire()

    assert taken is True
    row = await job_run(sessions)
    assert row is not None
    assert row.locked_until is not None
    assert row.locked_until > utcnow() + timedelta(seconds=LEASE_SECONDS - 60)


async def test_run_exclusive_successful_job_records_run_and_releases(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = JobLease(sessions, JOB)
    before = utcnow()

    async def job() -> str:
        return "deleted 3"

    result = await run_exclusive(lease, job)

    assert result == "deleted 3"
    row = await job_run(sessions)
    assert row is not None
    assert row.last_result == "deleted 3"
    assert row.last_run_at is not None
    assert row.last_run_at >= before
    assert row.locked_until is None


async def test_run_exclusive_failing_job_releases_without_last_run(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = JobLease(sessions, JOB)

    async def job() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run_exclusive(lease, job)

    row = await job_run(sessions)
    assert row is not None
    assert row.locked_until is None
    assert row.last_run_at is None
    assert row.last_result == "failed: RuntimeError"


async def test_run_exclusive_cancelled_job_releases_lease(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = JobLease(sessions, JOB)
    started = asyncio.Event()

    async def job() -> str:
        started.set()
        await asyncio.Event().wait()  # runs until cancelled, as at shutdown
        return "never"

    task = asyncio.create_task(run_exclusive(lease, job))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    row = await job_run(sessions)
    assert row is not None
    assert row.locked_until is None
    assert row.last_result == "failed: CancelledError"
    assert await lease.acquire() is True


async def test_run_exclusive_concurrent_calls_runs_job_once(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    lease = JobLease(sessions, JOB)
    runs = 0
    skipped = asyncio.Event()

    async def job() -> str:
        nonlocal runs
        runs += 1
        await skipped.wait()  # hold the lease until the other caller has given up
        return "ran"

    async def attempt() -> str | None:
        result = await run_exclusive(lease, job)
        if result is None:
            skipped.set()
        return result

    # If both callers got the lease, both would wait forever: the timeout turns that into a failure.
    results = await asyncio.wait_for(asyncio.gather(attempt(), attempt()), timeout=30)

    assert results.count("ran") == 1
    assert results.count(None) == 1
    assert runs == 1


@pytest.mark.parametrize(
    ("last_run_ago", "expected"),
    [
        pytest.param(None, True, id="never-run"),
        pytest.param(timedelta(hours=25), True, id="older-than-interval"),
        pytest.param(timedelta(hours=1), False, id="recent"),
    ],
)
async def test_is_due_by_last_run_returns_expected(
    sessions: async_sessionmaker[AsyncSession], last_run_ago: timedelta | None, expected: bool
) -> None:
    if last_run_ago is not None:
        await put_job_run(sessions, last_run_at=utcnow() - last_run_ago)

    assert await is_due(JobLease(sessions, JOB), timedelta(hours=24)) is expected


async def noop() -> str:
    return "ok"


async def test_schedule_periodic_never_run_adds_interval_and_catch_up_jobs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    scheduler = build_scheduler()

    await schedule_periodic(scheduler, JobLease(sessions, JOB), noop, timedelta(hours=24))

    assert {job.id for job in scheduler.get_jobs()} == {JOB, f"{JOB}:catch-up"}
    assert scheduler.get_job(JOB).trigger.interval == timedelta(hours=24)


async def test_schedule_periodic_recent_run_adds_only_interval_job(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await put_job_run(sessions, last_run_at=utcnow() - timedelta(hours=1))
    scheduler = build_scheduler()

    await schedule_periodic(scheduler, JobLease(sessions, JOB), noop, timedelta(hours=24))

    assert [job.id for job in scheduler.get_jobs()] == [JOB]


async def test_lifespan_scheduler_enabled_runs_scheduler_until_exit(
    app_factory: AppFactory,
) -> None:
    async with app_factory(scheduler_enabled=True) as (_, state):
        scheduler = state["scheduler"]
        assert scheduler is not None
        assert scheduler.running
        assert scheduler.get_job(JOB_NAME) is not None
    # APScheduler's shutdown is scheduled on the loop: give it one iteration, no more.
    await asyncio.sleep(0)

    assert not scheduler.running


async def test_lifespan_scheduler_disabled_has_no_scheduler(app_factory: AppFactory) -> None:
    async with app_factory(scheduler_enabled=False) as (_, state):
        assert state["scheduler"] is None
