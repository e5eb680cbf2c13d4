"""The database circuit breaker (issue 22): a black-holed PostgreSQL made every request wait
the full connect timeout. After DATABASE_BREAKER_FAILURES consecutive failed connects, new
connects are refused at once (503) for DATABASE_BREAKER_OPEN_SECONDS; the first success closes
it; /readyz reports it. Timing is never asserted: the hole counts the connects it receives."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
from prometheus_client import REGISTRY

from app.api.state import State
from app.core.db import DatabaseBreaker, breaker_of
from app.core.errors import DatabaseUnavailable
from app.main import create_app
from app.testing import running_app
from tests.conftest import make_settings, new_user
from tests.outages.conftest import PrivatePostgres
from tests.outages.test_database import NO_HANG_SECONDS, _fresh_schema, _listening


def state_of(breaker: DatabaseBreaker) -> str:
    return breaker.state  # a call, so mypy does not narrow it between transitions


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_threshold_and_refuses_at_once() -> None:
    clock = FakeClock()
    breaker = DatabaseBreaker(3, 10, clock=clock)
    for _ in range(2):
        breaker.before_connect()
        breaker.failed()
    assert state_of(breaker) == "closed"
    breaker.before_connect()
    breaker.failed()

    assert state_of(breaker) == "open"
    with pytest.raises(DatabaseUnavailable) as refused:
        breaker.before_connect()
    assert refused.value.headers == {"Retry-After": "10"}


def test_breaker_success_between_failures_resets_the_count() -> None:
    breaker = DatabaseBreaker(2, 10, clock=FakeClock())
    breaker.failed()
    breaker.succeeded()
    breaker.failed()

    assert state_of(breaker) == "closed"


def test_breaker_after_interval_lets_one_probe_through_and_success_closes() -> None:
    clock = FakeClock()
    breaker = DatabaseBreaker(1, 5, clock=clock)
    breaker.failed()
    clock.now += 5

    assert state_of(breaker) == "half_open"
    breaker.before_connect()  # the probe
    with pytest.raises(DatabaseUnavailable):
        breaker.before_connect()  # everyone else, while the probe is out
    breaker.succeeded()

    assert state_of(breaker) == "closed"
    breaker.before_connect()


def test_breaker_failed_probe_reopens_for_a_full_interval() -> None:
    clock = FakeClock()
    breaker = DatabaseBreaker(3, 5, clock=clock)
    for _ in range(3):
        breaker.failed()
    clock.now += 6
    breaker.before_connect()
    breaker.failed()

    assert state_of(breaker) == "open"
    assert breaker.retry_after() == 5


def test_breaker_cancelled_probe_frees_the_next_probe() -> None:
    clock = FakeClock()
    breaker = DatabaseBreaker(1, 5, clock=clock)
    breaker.failed()
    clock.now += 5
    breaker.before_connect()
    breaker.abandoned()  # e.g. the request was cancelled mid-connect

    breaker.before_connect()  # not stuck open: another probe may go
    assert state_of(breaker) == "open"  # ...and it is the one in flight


@contextmanager
def black_hole(port: int) -> Iterator[socket.socket]:
    """The port accepts TCP and never answers; `accept_pending` counts connects made."""
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", port))
    hole.listen(64)
    hole.setblocking(False)
    try:
        yield hole
    finally:
        hole.close()


def accept_pending(hole: socket.socket, held: list[socket.socket]) -> int:
    count = 0
    while True:
        try:
            conn, _ = hole.accept()
        except BlockingIOError:
            return count
        held.append(conn)  # kept open: a closed one would be a refusal, not a black hole
        count += 1


@pytest.fixture
async def breaker_app(
    private_postgres: PrivatePostgres,
) -> AsyncIterator[tuple[httpx.AsyncClient, State, PrivatePostgres, FakeClock]]:
    await _fresh_schema(private_postgres.url)
    settings = make_settings(
        private_postgres.url,
        database_connect_timeout_seconds=1,
        database_statement_timeout_seconds=1,
        database_pool_timeout_seconds=2,
        database_breaker_failures=2,
        database_breaker_open_seconds=30,
    )
    async with running_app(create_app(settings), raise_app_exceptions=False) as (client, state):
        breaker = breaker_of(state["engine"])
        assert breaker is not None
        clock = FakeClock()
        breaker.clock = clock
        yield client, state, private_postgres, clock
    if not _listening(private_postgres.port):
        private_postgres.start()


async def _get(client: httpx.AsyncClient, path: str, **kwargs: object) -> httpx.Response:
    async with asyncio.timeout(NO_HANG_SECONDS):
        return await client.get(path, **kwargs)  # type: ignore[arg-type]


def _opened() -> float:
    return REGISTRY.get_sample_value("database_breaker_opened_total") or 0.0


async def test_black_holed_postgres_after_failures_is_503_without_connecting(
    breaker_app: tuple[httpx.AsyncClient, State, PrivatePostgres, FakeClock],
) -> None:
    """Reproduced: every request waited the connect timeout (5 s by default) for its 503."""
    client, state, cluster, clock = breaker_app
    headers = await new_user(client)
    cluster.stop()
    cluster.wait_down()
    opened_before = _opened()
    held: list[socket.socket] = []
    with black_hole(cluster.port) as hole:
        try:
            for _ in range(2):  # each waits the connect timeout: the breaker counts them
                assert (await _get(client, "/api/me/", headers=headers)).status_code == 503
            attempts = accept_pending(hole, held)
            assert attempts >= 2

            refused = await _get(client, "/api/me/", headers=headers)
            ready = await _get(client, "/readyz")
            later = accept_pending(hole, held)
        finally:
            for conn in held:
                conn.close()

    assert refused.status_code == 503
    assert refused.json()["error"] == "database_unavailable"
    assert refused.headers["retry-after"] == "30"
    assert later == 0  # answered without a connect: no connect timeout to wait
    assert _opened() == opened_before + 1
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "circuit_open"
    assert ready.json()["database_circuit"] == "open"

    cluster.start()
    # Still open until the interval is over, though the server is back.
    assert (await _get(client, "/api/me/", headers=headers)).status_code == 503
    clock.now += 30
    back = await _get(client, "/api/me/", headers=headers)
    ready_after = await _get(client, "/readyz")

    assert back.status_code == 200
    breaker = breaker_of(state["engine"])
    assert breaker is not None
    assert state_of(breaker) == "closed"
    assert ready_after.status_code == 200
    assert "database_circuit" not in ready_after.json()


async def test_black_holed_postgres_probe_after_interval_is_one_connect(
    breaker_app: tuple[httpx.AsyncClient, State, PrivatePostgres, FakeClock],
) -> None:
    client, state, cluster, clock = breaker_app
    headers = await new_user(client)
    cluster.stop()
    cluster.wait_down()
    held: list[socket.socket] = []
    with black_hole(cluster.port) as hole:
        try:
            for _ in range(2):
                await _get(client, "/api/me/", headers=headers)
            accept_pending(hole, held)
            clock.now += 30

            probe, *others = await asyncio.gather(
                *(_get(client, "/api/me/", headers=headers) for _ in range(4))
            )
            attempts = accept_pending(hole, held)
        finally:
            for conn in held:
                conn.close()

    assert [r.status_code for r in (probe, *others)] == [503] * 4
    assert attempts == 1  # one probe; the others were refused while it was out
    breaker = breaker_of(state["engine"])
    assert breaker is not None
    assert state_of(breaker) == "open"
