"""Profile `GET /api/chat-history/?limit=100` in-process with pyinstrument (the app's real
lifespan over ASGI, no sockets), so the profile shows the app's own time.

    .venv/bin/python -m bench.perf.profile_history [--requests 300] [--html out.html]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from pyinstrument import Profiler

from app.main import create_app
from app.testing import running_app
from bench.harness import UNUSED_REMOTE_BACKENDS, bench_settings
from bench.perf.history import seed


async def run(requests: int, database_url: str | None) -> Profiler:
    with tempfile.TemporaryDirectory() as tmp:
        url = database_url or f"sqlite+aiosqlite:///{tmp}/profile.db"
        settings = bench_settings(url, **UNUSED_REMOTE_BACKENDS)
        from app.cli import migrate

        await asyncio.to_thread(migrate, settings)
        async with running_app(create_app(settings)) as (client, _state):
            password = "bench password 1"
            await client.post(
                "/api/signup/",
                json={"email": "p@example.com", "username": "p", "password": password},
            )
            login = await client.post(
                "/api/login/", json={"email": "p@example.com", "password": password}
            )
            headers = {"Authorization": f"Bearer {login.json()['access']}"}
            me = (await client.get("/api/me/", headers=headers)).json()
            await seed(url, me["id"])
            for _ in range(20):
                await client.get("/api/chat-history/?limit=100", headers=headers)
            profiler = Profiler(interval=0.0002, async_mode="enabled")
            profiler.start()
            for _ in range(requests):
                response = await client.get("/api/chat-history/?limit=100", headers=headers)
                assert response.status_code == 200
            profiler.stop()
    return profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--html", type=Path)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    profiler = asyncio.run(run(args.requests, args.database_url))
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    if args.html:
        args.html.write_text(profiler.output_html())


if __name__ == "__main__":
    main()
