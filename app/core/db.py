"""Declarative base, engine and session factories."""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Dialect, Engine, ExceptionContext
from sqlalchemy.ext.asyncio import (
    AsyncAttrs,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

from app.core import metrics
from app.core.config import Settings
from app.core.errors import DatabaseUnavailable
from app.core.sqlite import one_hop_dbapi

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
        if settings.database_url.startswith("sqlite+aiosqlite"):
            kwargs["module"] = one_hop_dbapi()  # one thread hop per statement, not four
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
    breaker = None
    if settings.database_breaker_failures > 0:
        breaker = DatabaseBreaker(
            settings.database_breaker_failures, settings.database_breaker_open_seconds
        )
        _BREAKERS[engine.sync_engine] = breaker
    _install_unavailability(engine, breaker)
    if settings.is_sqlite:
        _install_sqlite_pragmas(engine, settings.sqlite_busy_timeout_ms)
    return engine


_CANCELLED_SQLSTATES = frozenset({"57014", "57P01", "57P02", "57P03"})  # timeout, shutdown


BreakerState = Literal["closed", "open", "half_open"]
_CLOSED_RETRY_AFTER = 5


class DatabaseBreaker:
    """A circuit breaker around opening database connections.

    Closed: connects go through; `failures` consecutive failed connects (unreachable, refused,
    timed out) open it. Open: every connect is refused at once with `DatabaseUnavailable`
    (503, Retry-After the time left) for `open_seconds`, so a black-holed server no longer
    costs each request the connect timeout. Then half-open: one connect (the probe) goes
    through while the others are still refused; its success closes the breaker, its failure
    opens it for another interval. Pooled connections that still work are used throughout:
    only new connects are refused.

    Called from the engine's connect hook, in the event loop's thread; the lock keeps it
    correct for a synchronous engine used from threads too.
    """

    def __init__(
        self,
        failures: int,
        open_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.open_seconds = open_seconds
        self.clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state()

    def _state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        return "open" if self._remaining() > 0 or self._probing else "half_open"

    def _remaining(self) -> float:
        if self._opened_at is None:
            return 0.0
        return self._opened_at + self.open_seconds - self.clock()

    def retry_after(self) -> int:
        """Whole seconds until a connect may be tried again (at least 1); while closed, the
        default of `DatabaseUnavailable`."""
        with self._lock:
            if self._opened_at is None:
                return _CLOSED_RETRY_AFTER
            return max(1, math.ceil(self._remaining()))

    def before_connect(self) -> None:
        """Refuse the connect while open; let one probe through once the interval is over."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open":
                self._probing = True
                return
            retry_after = max(1, math.ceil(self._remaining()))
        metrics.DATABASE_BREAKER_REJECTED.inc()
        raise DatabaseUnavailable(
            "The database is unreachable; not trying again for a few seconds.",
            retry_after=retry_after,
        )

    def succeeded(self) -> None:
        with self._lock:
            self._failures, self._opened_at, self._probing = 0, None, False
        metrics.DATABASE_BREAKER_OPEN.set(0)

    def failed(self) -> None:
        with self._lock:
            self._failures += 1
            reopen = self._probing or self._failures >= self.threshold
            opened = reopen and self._opened_at is None
            if reopen:
                self._opened_at, self._probing = self.clock(), False
        if opened:
            metrics.DATABASE_BREAKER_OPENED.inc()
            metrics.DATABASE_BREAKER_OPEN.set(1)

    def abandoned(self) -> None:
        """A connect ended without telling whether the server is reachable (cancelled, or a
        refusal such as a wrong password, which only a reachable server gives)."""
        with self._lock:
            self._probing = False


_BREAKERS: weakref.WeakKeyDictionary[Engine, DatabaseBreaker] = weakref.WeakKeyDictionary()


def breaker_of(engine: AsyncEngine) -> DatabaseBreaker | None:
    """The engine's circuit breaker (None when DATABASE_BREAKER_FAILURES is 0)."""
    return _BREAKERS.get(engine.sync_engine)


def _install_unavailability(engine: AsyncEngine, breaker: DatabaseBreaker | None) -> None:
    """Driver failures that mean "the database is unreachable or overloaded" become
    `DatabaseUnavailable` (503 with Retry-After), not 500s. Connect errors arrive from the
    driver unwrapped (OSError, TimeoutError), and feed the circuit breaker; timeouts and
    cancellations during a statement are recognised here. Disconnects stay SQLAlchemy errors
    so the pool can invalidate the connection; the error handlers map those to 503 too."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
        if breaker is None:
            try:
                return dialect.connect(*cargs, **cparams)
            except (OSError, TimeoutError) as exc:
                raise DatabaseUnavailable("The database cannot be reached.") from exc
        breaker.before_connect()
        try:
            connection = dialect.connect(*cargs, **cparams)
        except (OSError, TimeoutError) as exc:
            breaker.failed()
            raise DatabaseUnavailable(
                "The database cannot be reached.", retry_after=breaker.retry_after()
            ) from exc
        except BaseException:
            breaker.abandoned()
            raise
        breaker.succeeded()
        return connection

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
