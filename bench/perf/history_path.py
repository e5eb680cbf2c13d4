"""The history read path alone, old against new on the same 100 rows, alternating: the ORM
query + one validated MessageRead per row + FastAPI's serialization (before) against column rows
+ orjson with the stored sources embedded (now). SQLite file in WAL mode, or `--database-url`.

    .venv/bin/python -m bench.perf.history_path [--iterations 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable

from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter
from sqlalchemy import select

from app.chat.history_json import messages_json
from app.chat.models import ChatMessage
from app.chat.repository import ChatRepository
from app.chat.schemas import MessageRead
from app.core.db import create_engine, create_sessionmaker
from app.models import Base
from bench.harness import bench_settings
from bench.perf.history import seed

ADAPTER = TypeAdapter(list[MessageRead])


async def run(iterations: int, url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = url or f"sqlite+aiosqlite:///{tmp}/path.db"
        engine = create_engine(bench_settings(url))
        sessions = create_sessionmaker(engine)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.run_sync(Base.metadata.create_all)
        async with sessions.begin() as session:
            from app.auth.models import User

            user = User(email="h@example.com", username="h", password_hash="x")
            session.add(user)
            await session.flush()
            user_id = user.id
        await seed(url, user_id)

        async def before() -> bytes:
            async with sessions() as session:
                query = (
                    select(ChatMessage)
                    .where(ChatMessage.user_id == user_id)
                    .order_by(ChatMessage.timestamp.desc(), ChatMessage.id.desc())
                    .limit(100)
                )
                rows = list(reversed((await session.execute(query)).scalars().all()))
            models = [MessageRead.model_validate(m) for m in rows]
            # What FastAPI did with response_model=list[MessageRead]: validate, then serialize.
            return ADAPTER.dump_json(ADAPTER.validate_python(jsonable_encoder(models)))

        async def now() -> bytes:
            async with sessions() as session:
                rows = await ChatRepository(session).latest(user_id, limit=100)
            return messages_json(rows)

        timings: dict[str, list[float]] = {"before": [], "now": []}
        paths: dict[str, Callable[[], Awaitable[bytes]]] = {"before": before, "now": now}
        for _ in range(20):
            await before()
            await now()
        for i in range(iterations):
            for name in ("before", "now") if i % 2 == 0 else ("now", "before"):
                start = time.perf_counter()
                await paths[name]()
                timings[name].append(time.perf_counter() - start)
        await engine.dispose()
    b, n = (statistics.median(timings[k]) * 1e3 for k in ("before", "now"))
    print(f"history read path, 100 rows: before {b:.2f} ms, now {n:.2f} ms (ratio {n / b:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    asyncio.run(run(args.iterations, args.database_url))


if __name__ == "__main__":
    main()
