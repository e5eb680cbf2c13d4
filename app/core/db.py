"""Declarative base, engine and session factories."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.core.config import Settings
from app.core.errors import DatabaseUnavailable

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# Row ids are 32-bit on PostgreSQL; a bigger number can match nothing, and SQLite would raise.
MAX_ID = 2**31 - 1


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(AsyncAttrs, DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_engine(settings: Settings) -> AsyncEngine:
    # hide_parameters: a failed statement's error (and so a 500's log line) would otherwise
    # carry its bound values: passwords' hashes, emails, chat and document text.
    kwargs: dict[str, Any] = {"echo": settings.database_echo, "hide_parameters": True}
    if not settings.database_url.endswith((":memory:", "://")):  # those use a static pool
        kwargs["pool_timeout"] = settings.database_pool_timeout_seconds
    if settings.is_sqlite:
        # busy_timeout is set by the pragma hook below; the driver's own timeout would mask it.
        kwargs["connect_args"] = {"timeout": 0}
    else:
        # A server can drop idle connections; a SQLite file cannot, so only ping servers.
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = settings.database_pool_size
        kwargs["max_overflow"] = settings.database_pool_size
        if settings.database_url.startswith("postgresql+asyncpg"):
            statement_ms = int(settings.database_statement_timeout_seconds * 1000)
            kwargs["connect_args"] = {
                # A black-holed server: connecting gives up instead of hanging.
                "timeout": settings.database_connect_timeout_seconds,
                # The server cancels a statement running longer; the client-side bound is
                # for a server that stopped answering mid-query.
                "server_settings": {"statement_timeout": str(statement_ms)},
                "command_timeout": settings.database_statement_timeout_seconds + 5,
            }
    engine = create_async_engine(settings.database_url, **kwargs)
    _install_unavailability(engine)
    if settings.is_sqlite:
        _install_sqlite_pragmas(engine, settings.sqlite_busy_timeout_ms)
    return engine


_CANCELLED_SQLSTATES = frozenset({"57014", "57P01", "57P02", "57P03"})  # timeout, shutdown


def _install_unavailability(engine: AsyncEngine) -> None:
    """Driver failures that mean "the database is unreachable or overloaded" become
    `DatabaseUnavailable` (503 with Retry-After), not 500s. Connect errors arrive from the
    driver unwrapped (OSError, TimeoutError); timeouts and cancellations during a statement
    are recognised here. Disconnects stay SQLAlchemy errors so the pool can invalidate the
    connection; the error handlers map those to 503 too."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError) as exc:
            raise DatabaseUnavailable("The database cannot be reached.") from exc

    @event.listens_for(engine.sync_engine, "handle_error")
    def _statement(context: ExceptionContext) -> None:
        if context.is_pre_ping:
            return  # the pool reconnects by itself
        original = context.original_exception
        sqlstate = getattr(original, "sqlstate", None) or getattr(
            getattr(original, "__cause__", None), "sqlstate", None
        )
        if isinstance(original, TimeoutError) or sqlstate in _CANCELLED_SQLSTATES:
            raise DatabaseUnavailable("The database did not answer in time.") from original


def _install_sqlite_pragmas(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        # busy_timeout first: switching to WAL can itself meet a lock on a fresh connection.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
