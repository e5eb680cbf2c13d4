"""Login timing and the event loop, with production password hashing (argon2id, t=3, 64 MiB).

1. A login with an unknown email must take as long as one with a wrong password (the service
   verifies a dummy hash), or response times reveal which accounts exist. Reported as the
   ratio of medians, unknown / known; goal within 0.8-1.25.
2. Hashing must not block the event loop: while logins run, a ticker measures how late its
   1 ms sleeps wake up. Baseline: the same ticker with the hashing done on the loop itself.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from app.auth.security import PasswordHasher
from app.core.config import Settings
from app.main import create_app
from app.testing import running_app
from bench.harness import UNUSED_REMOTE_BACKENDS, Goal, Result, cli, fresh_database

PASSWORD = "correct horse battery staple"
DEFAULTS = Settings.model_fields


async def ticker_lag(stop: asyncio.Event) -> list[float]:
    """How late each 1 ms sleep wakes up while other work runs, in ms."""
    lags: list[float] = []
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - start) * 1e3 - 1.0)
    return lags


async def run(quick: bool) -> Result:
    rounds = 8 if quick else 25
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(
            Path(tmp) / "auth.db",
            password_hash_time_cost=DEFAULTS["password_hash_time_cost"].default,
            password_hash_memory_kib=DEFAULTS["password_hash_memory_kib"].default,
            **UNUSED_REMOTE_BACKENDS,
        ) as db:
            async with running_app(create_app(db.settings)) as (client, state):
                account = {"email": "known@example.com", "username": "k", "password": PASSWORD}
                assert (await client.post("/api/signup/", json=account)).status_code == 201

                async def login(email: str, password: str) -> float:
                    start = time.perf_counter()
                    response = await client.post(
                        "/api/login/", json={"email": email, "password": password}
                    )
                    elapsed = time.perf_counter() - start
                    assert response.status_code in (200, 401), response.text
                    return elapsed

                timings: dict[str, list[float]] = {"wrong": [], "unknown": [], "right": []}
                for n in range(rounds):  # interleaved, so load drifts hit all three alike
                    timings["wrong"].append(await login("known@example.com", "wrong password"))
                    timings["unknown"].append(await login(f"nobody{n}@example.com", PASSWORD))
                    timings["right"].append(await login("known@example.com", PASSWORD))

                stop = asyncio.Event()
                lag_task = asyncio.create_task(ticker_lag(stop))
                await asyncio.gather(*(login("known@example.com", PASSWORD) for _ in range(8)))
                stop.set()
                threaded_lag = max(await lag_task)
                hasher: PasswordHasher = state["hasher"]

            stop = asyncio.Event()
            lag_task = asyncio.create_task(ticker_lag(stop))
            await asyncio.sleep(0.005)
            for _ in range(8):  # the baseline: the same verifications on the loop itself
                hasher.verify_sync(PASSWORD, hasher.dummy_hash)
                await asyncio.sleep(0)
            stop.set()
            blocking_lag = max(await lag_task)

    medians = {k: statistics.median(v) * 1e3 for k, v in timings.items()}
    ratio = medians["unknown"] / medians["wrong"]
    result = Result(
        name="auth",
        description="login timing (unknown email vs wrong password) and event-loop lag",
        params={"rounds": rounds, "argon2": "id, t=3, m=64 MiB, p=1 (production defaults)"},
        metrics={
            "login_wrong_password_ms": medians["wrong"],
            "login_unknown_email_ms": medians["unknown"],
            "login_success_ms": medians["right"],
            "unknown_over_wrong": ratio,
            "max_loop_lag_threaded_ms": threaded_lag,
            "max_loop_lag_blocking_ms": blocking_lag,
        },
    )
    result.headline(
        "login unknown email vs wrong password", medians["unknown"], medians["wrong"], "ms"
    )
    result.headline("loop lag, hashing in thread vs on loop", threaded_lag, blocking_lag, "ms")
    result.row("login, wrong password (median)", f"{medians['wrong']:.1f} ms")
    result.row("login, unknown email (median)", f"{medians['unknown']:.1f} ms")
    result.row("login, success (median)", f"{medians['right']:.1f} ms")
    result.row(
        "max event-loop lag, 8 logins",
        f"{threaded_lag:.1f} ms with hashing in a thread; {blocking_lag:.1f} ms if it ran "
        "on the loop (baseline)",
    )
    result.goals.append(Goal("unknown/wrong login time", ratio, "0.8-1.25", 0.8 <= ratio <= 1.25))
    result.notes.append(f"{rounds} interleaved rounds of the three logins, through the ASGI app")
    return result


def main() -> None:
    cli(run)


if __name__ == "__main__":
    main()
