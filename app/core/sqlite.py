"""aiosqlite with one thread hop per statement.

aiosqlite runs every call on the connection's own thread; SQLAlchemy's adapter makes four
such calls per statement (open a cursor, execute, fetch all rows, close the cursor), each a
queue hand-off, a future and a wake-up of the event loop through its self-pipe. On a loaded
2-core machine those hand-offs, not SQLite, were most of a request's database CPU
(`python -m bench.perf.layers`). This adapter does the four steps in one function on the
connection's thread. Same driver, same SQL, same transactions: only the number of hops
changes. Passed to `create_async_engine(module=...)` for `sqlite+aiosqlite` URLs.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# description, rows, rowcount, lastrowid, whether a transaction is open afterwards
_Outcome = tuple[Any, list[Any], int, int | None, bool]


def _run(connection: aiosqlite.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: the whole statement, cursor opened and closed here."""
    conn = connection._conn
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid, conn.in_transaction
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose statement and rows arrive in one call to the thread."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # No aiosqlite cursor: the parent's __init__ would open one (a hop).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]  # None before an INSERT, as sqlite3

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    async def _async_soft_close(self) -> None:
        return None  # nothing is open on the thread after a statement

    def close(self) -> None:
        self._rows.clear()

    def _apply(self, outcome: _Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid, in_tx = outcome
        self._rows = collections.deque(rows)
        self._adapt_connection._in_transaction = in_tx  # type: ignore[attr-defined]

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            self._apply(await_(self._statement(operation, parameters, many=False)))
        except Exception as error:
            # A failed statement may leave a transaction open: the next rollback must run.
            self._adapt_connection._in_transaction = True  # type: ignore[attr-defined]
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        try:
            self._apply(await_(self._statement(operation, seq_of_parameters, many=True)))
        except Exception as error:
            self._adapt_connection._in_transaction = True  # type: ignore[attr-defined]
            self._adapt_connection._handle_exception(error)

    async def _statement(self, operation: Any, parameters: Any, *, many: bool) -> _Outcome:
        async with self._adapt_connection._execute_mutex:
            outcome: _Outcome = await self._connection._execute(
                _run, self._connection, operation, parameters, many
            )
            return outcome


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """Skips COMMIT and ROLLBACK when no transaction is open (sqlite3 itself would do
    nothing then): a session that only read, returned to the pool, otherwise costs two empty
    rollbacks, two hops (the session's own and the pool's reset). Whether one is open is
    read on the connection's thread after every statement (`in_transaction` may not be read
    from another thread)."""

    __slots__ = ("_in_transaction",)
    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._in_transaction = True  # unknown until a statement ran

    def rollback(self) -> None:
        if self._in_transaction:
            super().rollback()
            self._in_transaction = False

    def commit(self) -> None:
        if self._in_transaction:
            super().commit()
            self._in_transaction = False


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI module SQLAlchemy builds, handing out `OneHopConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        connection = super().connect(*arg, **kw)
        return OneHopConnection(self, connection._connection)


def one_hop_dbapi() -> OneHopDBAPI:
    return OneHopDBAPI(aiosqlite, sqlite3)
