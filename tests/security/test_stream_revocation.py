"""Issue 22, finding 6: an open /v1 stream re-checks its caller. A key revoked or an account
deleted mid-answer ends the stream with an error event and `[DONE]` (the upstream generation
stopped), never with an unhandled exception. The real Hugging Face client streams from the
wire fake on 127.0.0.1; the fake is driven by events, not by sleeps."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import AppFactory, new_user
from tests.conversations.conftest import remote_settings
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.server import serve

PASSWORD = "correct horse 1"
LEAVE = "Employees receive 25 days of paid annual leave per calendar year."
QUESTION = "How many days of annual leave do employees get?"
WAIT = 30  # bounds on a test that went wrong, not timings


class HeldStream(FakeHuggingFace):
    """Streams `before` words, signals `midway`, then either falls silent until `release` (or
    the client goes away) or, with `trickle`, keeps sending one word per `trickle` seconds."""

    def __init__(self, *, before: int = 3, after: int = 400, trickle: float | None = None) -> None:
        super().__init__(answer=" ".join(f"w{n}" for n in range(before + after)))
        self.before = before
        self.trickle = trickle
        self.midway = threading.Event()
        self.release = threading.Event()
        self.stopped = threading.Event()
        self.finished = False

    async def _chunks(self, model: str, *args: Any, **kwargs: Any) -> AsyncIterator[str]:
        try:
            sent = 0
            async for chunk in super()._chunks(model, *args, **kwargs):
                yield chunk
                sent += 1
                if sent == self.before + 1:  # the role chunk, then `before` words
                    self.midway.set()
                    if self.trickle is None:
                        await asyncio.to_thread(self.release.wait, WAIT)
                elif sent > self.before + 1 and self.trickle is not None:
                    await asyncio.sleep(self.trickle)  # the upstream's pace, not a test timing
            self.finished = True
        finally:
            self.stopped.set()


@pytest.fixture
def held() -> Iterator[tuple[HeldStream, str]]:
    fake = HeldStream()
    with serve(fake.app) as url:
        yield fake, url
    fake.release.set()


@pytest.fixture
def trickling() -> Iterator[tuple[HeldStream, str]]:
    fake = HeldStream(trickle=0.02)
    with serve(fake.app) as url:
        yield fake, url


def _data(body: str) -> list[str]:
    return [line.removeprefix("data: ") for line in body.splitlines() if line.startswith("data: ")]


async def _setup(client: httpx.AsyncClient) -> tuple[dict[str, str], dict[str, str], int]:
    jwt = await new_user(client)
    upload = {"title": "Leave", "content": LEAVE}
    assert (await client.post("/api/documents/", json=upload, headers=jwt)).is_success
    created = await client.post("/api/keys/", json={"name": "sdk"}, headers=jwt)
    assert created.status_code == 201
    key = {"Authorization": f"Bearer {created.json()['key']}"}
    return jwt, key, int(created.json()["id"])


def _stream_body() -> dict[str, Any]:
    return {"model": "rag", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}


def _assert_ended_with_error_then_done(body: str) -> dict[str, Any]:
    data = _data(body)
    assert data[-1] == "[DONE]", body[-500:]
    error = json.loads(data[-2])["error"]
    assert error["type"] == "invalid_request_error"  # a 401 in OpenAI's shape
    deltas = [json.loads(d)["choices"][0]["delta"].get("content") for d in data[1:-2]]
    assert all(deltas)  # content deltas only before the error, no final chunk
    result: dict[str, Any] = error
    return result


async def test_stream_key_revoked_while_upstream_silent_ends_with_error_and_done(
    app_factory: AppFactory, held: tuple[HeldStream, str]
) -> None:
    fake, url = held
    settings = remote_settings(url, stream_principal_check_seconds=0.1)
    async with app_factory(**settings) as (client, _):
        jwt, key, key_id = await _setup(client)
        stream = asyncio.create_task(
            client.post("/v1/chat/completions", json=_stream_body(), headers=key)
        )
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        revoked = await client.delete(f"/api/keys/{key_id}/", headers=jwt)
        response = await asyncio.wait_for(stream, WAIT)  # the upstream is still silent

    assert revoked.status_code == 204
    assert response.status_code == 200
    _assert_ended_with_error_then_done(response.text)
    assert not fake.release.is_set()  # ended while the upstream was silent
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)  # generation stopped
    assert not fake.finished


async def test_stream_account_deleted_while_tokens_flow_ends_cleanly_without_exception(
    app_factory: AppFactory, trickling: tuple[HeldStream, str]
) -> None:
    fake, url = trickling
    settings = remote_settings(url, stream_principal_check_seconds=0.1)
    # raise_app_exceptions is on: an exception escaping the app would raise in the client.
    async with app_factory(**settings) as (client, _):
        jwt, key, _ = await _setup(client)
        stream = asyncio.create_task(
            client.post("/v1/chat/completions", json=_stream_body(), headers=key)
        )
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        deleted = await client.request(
            "DELETE", "/api/me/", json={"password": PASSWORD}, headers=jwt
        )
        response = await asyncio.wait_for(stream, WAIT)

    assert deleted.status_code == 204
    assert response.status_code == 200
    _assert_ended_with_error_then_done(response.text)
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)
    assert not fake.finished  # 400 words at the upstream's pace would take 8 s more


async def test_stream_valid_caller_gets_whole_answer_and_done(
    app_factory: AppFactory, trickling: tuple[HeldStream, str]
) -> None:
    fake, url = trickling
    fake.answer = " ".join(f"w{n}" for n in range(12))
    settings = remote_settings(url, stream_principal_check_seconds=0.1)
    async with app_factory(**settings) as (client, _):
        _, key, _ = await _setup(client)
        response = await client.post("/v1/chat/completions", json=_stream_body(), headers=key)

    data = _data(response.text)
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["choices"][0]["finish_reason"] == "stop"
    content = "".join(json.loads(d)["choices"][0]["delta"].get("content", "") for d in data[:-2])
    assert content == fake.answer


@pytest.fixture
def short_trickle() -> Iterator[tuple[HeldStream, str]]:
    fake = HeldStream(after=40, trickle=0.02)
    with serve(fake.app) as url:
        yield fake, url


async def test_api_stream_account_deleted_mid_answer_ends_with_error_event(
    app_factory: AppFactory, short_trickle: tuple[HeldStream, str]
) -> None:
    """The same class on /api/chat/stream/: the answer cannot be stored once its conversation
    went with its owner; the stream ends with an `error` event, not an unhandled exception."""
    fake, url = short_trickle
    async with app_factory(**remote_settings(url)) as (client, _):
        jwt, _, _ = await _setup(client)
        stream = asyncio.create_task(
            client.post("/api/chat/stream/", json={"message": QUESTION}, headers=jwt)
        )
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        deleted = await client.request(
            "DELETE", "/api/me/", json={"password": PASSWORD}, headers=jwt
        )
        response = await asyncio.wait_for(stream, WAIT)

    assert deleted.status_code == 204
    assert response.status_code == 200
    last = response.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error"), response.text[-300:]
    assert json.loads(last.split("data: ", 1)[1])["error"] == "not_found"
