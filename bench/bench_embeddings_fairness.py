"""Another user's chat while /v1/embeddings is flooded (issue 22, finding 4).

Reproduced before the fix: three requests of 256 inputs of 7,800 characters took one user's
chat from 0.05 s to 9.2 s (the embeddings took the encoder's query lane, ahead of questions).
Here, in process with the embedded defaults (the real MiniLM encoder): eight chat turns alone,
then eight while three maximal embedding requests (OPENAI_EMBEDDING_MAX_INPUTS inputs filling
OPENAI_EMBEDDING_MAX_REQUEST_CHARS) run in the bulk lane.

    python -m bench.bench_embeddings_fairness
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from app.core.db import create_engine
from app.main import create_app
from app.models import Base
from app.testing import isolated_settings, running_app

LEAVE = "Employees receive 25 days of paid annual leave per calendar year. "
PASSWORD = "correct horse 1"


async def _user(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    body = {"email": email, "username": email.split("@")[0], "password": PASSWORD}
    await client.post("/api/signup/", json=body)
    login = await client.post("/api/login/", json={"email": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access']}"}


async def _chats(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> list[float]:
    seconds = []
    for i in range(n):
        started = time.perf_counter()
        response = await client.post(
            "/api/chat/",
            json={"message": f"How many days of leave, question {i}?"},
            headers=headers,
        )
        assert response.status_code == 200, response.text
        seconds.append(time.perf_counter() - started)
    return seconds


async def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        settings = isolated_settings(
            f"sqlite+aiosqlite:///{Path(workdir) / 'bench.db'}", "bench-secret-" + "x" * 40
        )
        engine = create_engine(settings)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()
        async with running_app(create_app(settings)) as (client, _):
            flooder = await _user(client, "alice@example.com")
            asker = await _user(client, "bob@example.com")
            upload = {"title": "Leave", "content": LEAVE * 5}
            await client.post("/api/documents/", json=upload, headers=asker)
            alone = await _chats(client, asker, 8)

            count = settings.openai_embedding_max_inputs
            length = settings.openai_embedding_max_request_chars // count - 4
            texts = [(LEAVE * 200)[:length] + str(k) for k in range(count)]
            big = {"model": "rag-embedding", "input": texts}
            started = time.perf_counter()
            flood = [
                asyncio.create_task(client.post("/v1/embeddings", json=big, headers=flooder))
                for _ in range(3)
            ]
            during = await _chats(client, asker, 8)
            statuses = [r.status_code for r in await asyncio.gather(*flood)]
            flood_seconds = time.perf_counter() - started

    shape = f"{count} inputs x {length + 1} chars"
    print(f"3 embedding requests of {shape}: {statuses}, {flood_seconds:.1f} s")
    print(f"chat alone:  median {statistics.median(alone):.3f} s, max {max(alone):.3f} s")
    print(f"chat during: median {statistics.median(during):.3f} s, max {max(during):.3f} s")


if __name__ == "__main__":
    asyncio.run(main())
