"""How requests fare when the database fails (issue 9, "outages").

Measured on the seed: PostgreSQL refusing connections gave 500s (`/health` too); a
black-holed PostgreSQL made requests hang past 45 s; SQLite "database is locked" was a 500
after 15 s. Here, against a PostgreSQL cluster of the benchmark's own (stopped, then replaced
by a port that accepts TCP and never answers) and a SQLite file held by an exclusive lock:
the status of `GET /api/me/` and `/health`, and how long until the answer, with the default
timeouts (connect 5 s, statement 30 s, SQLite busy timeout 15 s) and then recovery. Then the
database circuit breaker (issue 22): black-holed requests with it off and on.
"""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from app.main import create_app
from app.models import Base
from app.testing import running_app
from bench.harness import Goal, Result, bench_settings, cli, fresh_database
from tests.outages.conftest import available, private_cluster


async def timed(client: httpx.AsyncClient, path: str, **kwargs: object) -> tuple[int, float]:
    start = time.perf_counter()
    response = await client.get(path, **kwargs)  # type: ignore[arg-type]
    return response.status_code, time.perf_counter() - start


async def postgres(result: Result, rounds: int) -> None:
    from app.core.db import create_engine

    with private_cluster() as cluster:
        engine = create_engine(bench_settings(cluster.url))
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        # Without the circuit breaker: what each request costs on its own (see `breaker`).
        app = create_app(bench_settings(cluster.url, database_breaker_failures=0))
        async with running_app(app, raise_app_exceptions=False) as (client, _):
            body = {"email": "o@example.com", "username": "o", "password": "outage pass 1"}
            await client.post("/api/signup/", json=body)
            login = await client.post("/api/login/", json=body)
            headers = {"Authorization": f"Bearer {login.json()['access']}"}
            healthy = [await timed(client, "/api/me/", headers=headers) for _ in range(rounds)]
            cluster.stop()
            cluster.wait_down()
            refused = [await timed(client, "/api/me/", headers=headers) for _ in range(rounds)]
            hole = socket.socket()
            hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            hole.bind(("127.0.0.1", cluster.port))
            hole.listen(64)
            try:
                holed = [await timed(client, "/api/me/", headers=headers) for _ in range(rounds)]
                health = await timed(client, "/health")
            finally:
                hole.close()
            cluster.start()
            back = await timed(client, "/api/me/", headers=headers)
    for label, samples in (
        ("PostgreSQL up: GET /api/me/", healthy),
        ("PostgreSQL refusing connections", refused),
        ("PostgreSQL black-holed (5 s connect timeout, no breaker)", holed),
    ):
        codes = sorted({code for code, _ in samples})
        median = statistics.median(t for _, t in samples) * 1e3
        result.row(label, f"{codes}, median {median:.0f} ms")
        result.metrics[label] = median
    result.row("PostgreSQL black-holed: /health", f"{health[0]} in {health[1] * 1e3:.0f} ms")
    result.row("PostgreSQL back: GET /api/me/ (no restart)", f"{back[0]} in {back[1] * 1e3:.0f} ms")
    worst = max(t for _, t in [*refused, *holed, health])
    result.goals.append(
        Goal(
            "503 for every outage request",
            float(all(c == 503 for c, _ in [*refused, *holed])),
            "1",
            all(c == 503 for c, _ in [*refused, *holed]),
        )
    )
    result.goals.append(Goal("slowest outage answer (s)", worst, "< 10 (no hang)", worst < 10))
    result.goals.append(
        Goal("recovered without restart", float(back[0] == 200), "1", back[0] == 200)
    )


async def breaker(result: Result, rounds: int) -> None:
    """Black-holed PostgreSQL, `GET /api/me/` one after the other: the breaker off
    (DATABASE_BREAKER_FAILURES=0, every request waits the connect timeout) and on (the
    default 3 failures; the requests after those are refused at once while it is open)."""
    from app.core.db import create_engine

    with private_cluster() as cluster:
        engine = create_engine(bench_settings(cluster.url))
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        medians: dict[str, float] = {}
        for label, failures in (("off", 0), ("on", 3)):
            settings = bench_settings(cluster.url, database_breaker_failures=failures)
            async with running_app(create_app(settings), raise_app_exceptions=False) as (
                client,
                _,
            ):
                email = f"b{failures}@example.com"
                body = {"email": email, "username": "b", "password": "outage pass 1"}
                await client.post("/api/signup/", json=body)
                login = await client.post("/api/login/", json=body)
                headers = {"Authorization": f"Bearer {login.json()['access']}"}
                cluster.stop()
                cluster.wait_down()
                hole = socket.socket()
                hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                hole.bind(("127.0.0.1", cluster.port))
                hole.listen(64)
                try:
                    samples = [
                        await timed(client, "/api/me/", headers=headers) for _ in range(rounds)
                    ]
                finally:
                    hole.close()
                cluster.start()
                back = time.perf_counter()
                # Polling the server: the recovery time is the figure, there is no event.
                while (await client.get("/api/me/", headers=headers)).status_code != 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                recovery = time.perf_counter() - back
            codes = sorted({code for code, _ in samples})
            times = [t for _, t in samples]
            # With the breaker, the first `failures` requests wait the timeout and open it.
            after = times[failures:]
            medians[label] = statistics.median(after) * 1e3
            which = f"the {len(after)} after the {failures} that opened it" if failures else "all"
            result.row(
                f"black-holed, breaker {label}: GET /api/me/ x{rounds}",
                f"{codes}; median of {which} {medians[label]:.1f} ms, "
                f"total {sum(times):.1f} s; 200 again {recovery:.1f} s after the server is back",
            )
            result.metrics[f"breaker {label} median ms"] = medians[label]
            result.metrics[f"breaker {label} recovery s"] = recovery
    result.goals.append(
        Goal(
            "breaker open: answer (ms) vs the 5 s connect timeout",
            medians["on"],
            "< 100",
            medians["on"] < 100,
        )
    )


async def sqlite_locked(result: Result) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "locked.db"
        async with (
            fresh_database(path) as db,
            running_app(create_app(db.settings), raise_app_exceptions=False) as (client, _),
        ):
            holder = sqlite3.connect(path, isolation_level=None)
            holder.execute("BEGIN EXCLUSIVE")
            start = time.perf_counter()
            body = {"email": "l@example.com", "username": "l", "password": "locked pass 1"}
            response = await client.post("/api/signup/", json=body)
            elapsed = time.perf_counter() - start
            holder.execute("ROLLBACK")
            holder.close()
    result.row(
        "SQLite write lock held past SQLITE_BUSY_TIMEOUT_MS (15 s)",
        f"{response.status_code} {response.json()['error']} after {elapsed:.1f} s",
    )
    result.goals.append(
        Goal(
            "SQLite locked is 503", float(response.status_code), "503", response.status_code == 503
        )
    )


async def run(quick: bool) -> Result:
    result = Result(
        name="outages",
        description="database failures: status and time to answer",
        params={"rounds": 3 if quick else 10},
    )
    if available():
        await postgres(result, 3 if quick else 10)
        await breaker(result, 6 if quick else 10)
    else:
        result.notes.append("PostgreSQL server binaries missing: PostgreSQL part skipped")
    await sqlite_locked(result)
    return result


def main() -> None:
    cli(run)


if __name__ == "__main__":
    main()
