"""Process CPU per request, layer by layer, in-process over raw ASGI (no sockets, no HTTP
client): robust to a loaded machine, since it counts this process's CPU time
(`time.process_time`), not wall time. Every figure is interleaved with a bare FastAPI `/hello`
driven the same way (the baseline of issue 17's ladder).

    .venv/bin/python -m bench.perf.layers [--requests 400] [--rounds 5] [--database-url URL]

Rows: the whole app on `/health`, `/api/me/` and `GET /api/chat-history/?limit=100`; the
route alone (the app's router, no middleware); each middleware around a bare endpoint; and the
pieces a history request is made of (token decoding, the user lookup, one session, the
history query, the feedback query, serialization).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.bodylimit import BodyLimit
from app.api.middleware import (
    AllowedMethodsMiddleware,
    SecurityHeadersMiddleware,
    UnicodeEdgeMiddleware,
)
from app.auth.models import User
from app.chat.history_json import messages_json
from app.chat.repository import ChatRepository
from app.core.errors import InternalErrorMiddleware
from app.core.metrics import RequestMetricsMiddleware
from app.core.requestid import RequestIdMiddleware
from app.main import create_app
from app.testing import running_app
from bench.harness import UNUSED_REMOTE_BACKENDS, bench_settings
from bench.perf.history import seed

Job = Callable[[], Awaitable[Any]]


def asgi_get(
    app: ASGIApp, path: str, headers: dict[str, str], state: dict[str, Any] | None = None
) -> Job:
    """A job that sends one GET through `app` and checks for a 2xx."""
    raw_path, _, query = path.partition("?")
    raw_headers = [(b"host", b"testserver")] + [
        (k.lower().encode(), v.encode()) for k, v in headers.items()
    ]

    async def run() -> None:
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw_headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": dict(state or {}),
        }
        status = 0

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(scope, receive, send)
        assert 200 <= status < 300, (path, status)

    return run


async def cpu_us(job: Job, requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        await job()
    return (time.process_time() - started) / requests * 1e6


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """The cheapest ASGI endpoint: what each middleware is wrapped around."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def run(requests: int, rounds: int, database_url: str | None) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/layers.db"
        settings = bench_settings(url, **UNUSED_REMOTE_BACKENDS)
        from app.cli import migrate

        await asyncio.to_thread(migrate, settings)
        app = create_app(settings)
        async with running_app(app) as (client, state):
            password = "bench password 1"
            await client.post(
                "/api/signup/",
                json={"email": "p@example.com", "username": "p", "password": password},
            )
            login = await client.post(
                "/api/login/", json={"email": "p@example.com", "password": password}
            )
            token = login.json()["access"]
            headers = {"Authorization": f"Bearer {token}"}
            me = (await client.get("/api/me/", headers=headers)).json()
            await seed(url, me["id"])
            shared = dict(state)
            history = "/api/chat-history/?limit=100"
            sessions = state["sessions"]

            async def decode() -> None:
                state["tokens"].decode(token, "access")

            async def user_lookup() -> None:
                async with sessions() as session:
                    await session.get(User, me["id"])

            async def empty_session() -> None:
                async with sessions() as session:
                    await session.commit()

            async def history_query() -> None:
                async with sessions() as session:
                    await ChatRepository(session).latest(me["id"], limit=100)

            async with sessions() as session:
                rows = await ChatRepository(session).latest(me["id"], limit=100)

            async def serialize() -> None:
                messages_json(rows, {})

            # What FastAPI itself puts around the router (exception handling, the exit stack).
            router_only = AsyncExitStackMiddleware(app.router)
            hello = bare_app()
            mw: dict[str, ASGIApp] = {
                "RequestIdMiddleware": RequestIdMiddleware(endpoint),
                "SecurityHeadersMiddleware": SecurityHeadersMiddleware(endpoint),
                "AllowedMethodsMiddleware": AllowedMethodsMiddleware(endpoint, app.router),
                "RequestMetricsMiddleware": RequestMetricsMiddleware(endpoint, app.router),
                "BodyLimit": BodyLimit(endpoint, default=1_000_000, overrides={}),
                "UnicodeEdgeMiddleware": UnicodeEdgeMiddleware(
                    endpoint, handlers=app.exception_handlers
                ),
                "InternalErrorMiddleware": InternalErrorMiddleware(
                    endpoint, handlers=app.exception_handlers
                ),
            }
            jobs: dict[str, Job] = {
                "bare FastAPI /hello (baseline)": asgi_get(hello, "/hello", {}),
                "app /health": asgi_get(app, "/health", {}, shared),
                "app /api/me/": asgi_get(app, "/api/me/", headers, shared),
                "app history": asgi_get(app, history, headers, shared),
                "router only /health": asgi_get(router_only, "/health", {}, shared),
                "router only /api/me/": asgi_get(router_only, "/api/me/", headers, shared),
                "router only history": asgi_get(router_only, history, headers, shared),
                "bare ASGI endpoint": asgi_get(endpoint, "/x", headers),
                **{f"mw {k}": asgi_get(v, "/api/me/", headers) for k, v in mw.items()},
                "token decode": decode,
                "user lookup (own session)": user_lookup,
                "empty session + commit": empty_session,
                "history query (own session)": history_query,
                "serialize 100 rows": serialize,
            }
            for job in jobs.values():  # warm-up
                for _ in range(20):
                    await job()
            results: dict[str, list[float]] = {name: [] for name in jobs}
            names = list(jobs)
            for r in range(rounds):
                for name in names if r % 2 == 0 else reversed(names):
                    results[name].append(await cpu_us(jobs[name], requests))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    results = asyncio.run(run(args.requests, args.rounds, args.database_url))
    hello = statistics.median(results["bare FastAPI /hello (baseline)"])
    print(f"{'layer':40} {'CPU us/request (median)':>24} {'min-max':>16} {'hello/x':>8}")
    for name, values in results.items():
        med = statistics.median(values)
        print(f"{name:40} {med:24.1f} {min(values):7.1f}-{max(values):<8.1f} {hello / med:8.3f}")


if __name__ == "__main__":
    main()
