"""Streaming details: keepalive comments while the upstream is silent, and a client that
disconnects mid-stream (the real uvicorn, the real Hugging Face client, the wire fake)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from sqlalchemy import select

from app.chat.models import ChatMessage
from app.core.db import create_engine, create_sessionmaker
from app.main import create_app
from tests.conftest import make_settings, new_user
from tests.conversations.conftest import RemoteFactory, remote_settings
from tests.fakes.huggingface import FakeHuggingFace, Fault, delay
from tests.fakes.server import serve

LEAVE = (
    "Employees receive 25 days of paid annual leave per calendar year. Up to five unused days "
    "can be carried over until the end of March of the following year."
)
QUESTION = "How many days of annual leave do employees get?"
WORDS = 200
WAIT_SECONDS = 10


class SlowStream(FakeHuggingFace):
    """Streams its answer one word every `interval` seconds and records how far it got."""

    def __init__(self, *, words: int = WORDS, interval: float = 0.05) -> None:
        super().__init__(answer=" ".join(f"w{n}" for n in range(words)))
        self.interval = interval
        self.sent = 0
        self.finished = False
        self.stopped = threading.Event()

    async def _chunks(self, model: str) -> AsyncIterator[str]:
        try:
            async for chunk in super()._chunks(model):
                yield chunk
                self.sent += 1
                await asyncio.sleep(self.interval)
            self.finished = True
        finally:
            self.stopped.set()


def _events(body: str) -> list[str]:
    """Event names and comments of an SSE body, in order."""
    out = []
    for block in body.split("\n\n"):
        if block.startswith(":"):
            out.append(block)
        elif block.startswith("event: "):
            out.append(block.split("\n")[0].removeprefix("event: "))
    return out


async def test_stream_slow_upstream_sends_keepalive_comments_before_first_delta(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote(sse_keepalive_seconds=0.2) as (client, _):
        headers = await new_user(client)
        upload = {"title": "Leave", "content": LEAVE}
        assert (await client.post("/api/documents/", json=upload, headers=headers)).is_success
        hf.push(Fault(), delay(1.0))  # the question's embedding at once, the answer late

        response = await client.post(
            "/api/chat/stream/", json={"message": QUESTION}, headers=headers
        )

        events = _events(response.text)
        first_delta = events.index("delta")
        assert events[0] == "sources"
        assert events[1:first_delta].count(": keepalive") >= 3
        assert set(events[1:first_delta]) == {": keepalive"}
        assert events[-1] == "done"


async def test_stream_prompt_upstream_sends_no_keepalive(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote(sse_keepalive_seconds=5) as (client, _):
        headers = await new_user(client)
        upload = {"title": "Leave", "content": LEAVE}
        assert (await client.post("/api/documents/", json=upload, headers=headers)).is_success

        response = await client.post(
            "/api/chat/stream/", json={"message": QUESTION}, headers=headers
        )

        assert ": keepalive" not in _events(response.text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_app(settings: Any) -> Iterator[str]:
    """Our app under uvicorn (lifespan on, as `chatbot serve` runs it) in a thread."""
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"app-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=WAIT_SECONDS)


async def _bot_messages(database_url: str) -> list[ChatMessage]:
    engine = create_engine(make_settings(database_url))
    try:
        async with create_sessionmaker(engine)() as session:
            query = select(ChatMessage).where(ChatMessage.role == "bot")
            return list((await session.execute(query)).scalars())
    finally:
        await engine.dispose()


async def test_stream_client_disconnect_cancels_upstream_and_stores_partial_answer(
    database_url: str,
) -> None:
    fake = SlowStream()
    with serve(fake.app) as fake_url:
        settings = make_settings(database_url, **remote_settings(fake_url))
        with serve_app(settings) as app_url:
            async with httpx.AsyncClient(base_url=app_url, timeout=WAIT_SECONDS) as client:
                headers = await new_user(client)
                upload = {"title": "Leave", "content": LEAVE}
                assert (
                    await client.post("/api/documents/", json=upload, headers=headers)
                ).is_success
                seen: list[str] = []
                async with client.stream(
                    "POST", "/api/chat/stream/", json={"message": QUESTION}, headers=headers
                ) as response:
                    assert response.status_code == 200
                    async for line in response.aiter_lines():
                        if line.startswith('data: {"text"'):
                            seen.append(line)
                        if len(seen) == 3:
                            break  # leaving the block closes the connection mid-stream
                assert await asyncio.to_thread(fake.stopped.wait, WAIT_SECONDS)
                assert not fake.finished
                assert fake.sent < WORDS // 2

                deadline = time.monotonic() + WAIT_SECONDS
                while not (stored := await _bot_messages(database_url)):
                    assert time.monotonic() < deadline, "no bot message stored"
                    await asyncio.sleep(0.05)
                (message,) = stored
                assert message.interrupted is True
                assert message.content.startswith("w0 w1 w2")
                assert len(message.content.split()) < WORDS
                page = await client.get(
                    f"/api/conversations/{message.conversation_id}/messages/", headers=headers
                )
                assert page.json()["items"][-1]["interrupted"] is True
