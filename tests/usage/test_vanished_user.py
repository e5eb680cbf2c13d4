"""A user deleted while their turn is answered: the meter records nothing for them and raises
nothing (`TurnMeter.settle`), on every path that settles (REST, the REST stream, /v1 plain and
streamed, MCP's ask_knowledge_base). Each answer then ends with the path's own clean "gone"
error, never a 500 (`raise_app_exceptions` is on: an exception escaping the app would raise in
the test client). The LLM is the real Hugging Face client against the wire fake on 127.0.0.1,
held on an event until the account is deleted, so no test sleeps for timing."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response

from app.api.state import State
from app.auth.models import User
from app.rag.protocols import ChatTurn, GenerationRequest
from app.usage.models import TokenReservation, TokenUsage
from tests.conftest import AppFactory, new_user
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.server import serve
from tests.usage.conftest import ANSWER, MAX_TOKENS

PASSWORD = "correct horse 1"
QUESTION = "What is the capital of France?"
WAIT = 30  # bounds on a test that went wrong, not timings
ACCEPT = {"Accept": "application/json, text/event-stream"}


class HeldLLM(FakeHuggingFace):
    """Answers each chat request only once `release` is set."""

    def __init__(self) -> None:
        super().__init__(answer=ANSWER)
        self.release = threading.Event()

    async def _chat(self, request: Request) -> Response:
        self.chat_received.set()
        await asyncio.to_thread(self.release.wait, WAIT)
        return await super()._chat(request)


@pytest.fixture
def held() -> Iterator[tuple[HeldLLM, str]]:
    fake = HeldLLM()
    with serve(fake.app) as url:
        yield fake, url
    fake.release.set()


def _app(
    app_factory: AppFactory, url: str
) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]:
    return app_factory(
        llm_backend="huggingface",
        llm_base_url=f"{url}/v1",
        llm_model="test-model",
        huggingface_api_key="hf_test_token",
        llm_max_tokens=MAX_TOKENS,
        embedding_backend="huggingface",
        embedding_url=f"{url}/embed",
        rag_fallback="general",
        # A budget, so the turn holds a reservation that settling must replace.
        user_daily_token_budget=100_000,
    )


async def _rows(state: State) -> tuple[int, int]:
    async with state["sessions"]() as session:
        usage = await session.scalar(select(func.count()).select_from(TokenUsage))
        held = await session.scalar(select(func.count()).select_from(TokenReservation))
    return int(usage or 0), int(held or 0)


async def _delete_while_answering(
    client: httpx.AsyncClient,
    fake: HeldLLM,
    jwt: dict[str, str],
    request: asyncio.Task[httpx.Response],
) -> httpx.Response:
    """Delete the account while the LLM holds the turn's answer, then let it answer."""
    assert await asyncio.to_thread(fake.chat_received.wait, WAIT)
    deleted = await client.request("DELETE", "/api/me/", json={"password": PASSWORD}, headers=jwt)
    assert deleted.status_code == 204, deleted.text
    fake.release.set()
    return await asyncio.wait_for(request, WAIT)


def _sse_events(body: str) -> list[str]:
    return [b.splitlines()[0] for b in body.strip().split("\n\n") if b.startswith("event: ")]


async def test_settle_user_deleted_during_turn_records_nothing_without_error(
    app_factory: AppFactory, held: tuple[HeldLLM, str]
) -> None:
    _, url = held
    async with _app(app_factory, url) as (client, state):
        jwt = await new_user(client)
        uid = (await client.get("/api/me/", headers=jwt)).json()["id"]
        async with state["sessions"]() as session:
            user = await session.get(User, uid)
        assert user is not None
        meter = await state["usage"].start(user, "chat")
        request = GenerationRequest(
            QUESTION, contexts=[], messages=[ChatTurn("user", QUESTION)], max_tokens=MAX_TOKENS
        )
        await meter.admit(request)
        assert await _rows(state) == (0, 1)  # the reservation
        deleted = await client.request(
            "DELETE", "/api/me/", json={"password": PASSWORD}, headers=jwt
        )
        assert deleted.status_code == 204

        usage = await meter.settle("an answer nobody will read")

        assert usage.completion_tokens > 0  # the turn's count, returned all the same
        assert await _rows(state) == (0, 0)  # nothing recorded for a user who is gone
        assert await meter.settle("again") is usage  # still idempotent


async def test_rest_chat_user_deleted_mid_answer_is_clean_404(
    app_factory: AppFactory, held: tuple[HeldLLM, str]
) -> None:
    fake, url = held
    async with _app(app_factory, url) as (client, state):
        jwt = await new_user(client)
        request = asyncio.create_task(
            client.post("/api/chat/", json={"message": QUESTION}, headers=jwt)
        )
        response = await _delete_while_answering(client, fake, jwt, request)
        rows = await _rows(state)

    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert rows == (0, 0)


async def test_rest_stream_user_deleted_mid_answer_ends_with_error_event(
    app_factory: AppFactory, held: tuple[HeldLLM, str]
) -> None:
    fake, url = held
    async with _app(app_factory, url) as (client, state):
        jwt = await new_user(client)
        request = asyncio.create_task(
            client.post("/api/chat/stream/", json={"message": QUESTION}, headers=jwt)
        )
        response = await _delete_while_answering(client, fake, jwt, request)
        rows = await _rows(state)

    assert response.status_code == 200
    events = _sse_events(response.text)
    assert events[-1] == "event: error", response.text[-300:]
    assert "event: done" not in events
    assert rows == (0, 0)


async def test_v1_completion_user_deleted_mid_answer_is_clean_404(
    app_factory: AppFactory, held: tuple[HeldLLM, str]
) -> None:
    fake, url = held
    body = {"model": "rag", "messages": [{"role": "user", "content": QUESTION}]}
    async with _app(app_factory, url) as (client, state):
        jwt = await new_user(client)
        request = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=jwt))
        response = await _delete_while_answering(client, fake, jwt, request)
        rows = await _rows(state)

    assert response.status_code == 404, response.text
    assert "error" in response.json()
    assert rows == (0, 0)


async def test_v1_stream_user_deleted_mid_answer_ends_with_error_and_done(
    app_factory: AppFactory, held: tuple[HeldLLM, str]
) -> None:
    fake, url = held
    body = {"model": "rag", "stream": True, "messages": [{"role": "user", "content": QUESTION}]}
    async with _app(app_factory, url) as (client, state):
        jwt = await new_user(client)
        request = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=jwt))
        response = await _delete_while_answering(client, fake, jwt, request)
        rows = await _rows(state)

    assert response.status_code == 200
    data = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert "error" in json.loads(data[-2])
    assert rows == (0, 0)


async def test_mcp_ask_user_deleted_mid_answer_is_tool_error(
    app_factory: AppFactory, held: tuple[HeldLLM, str]
) -> None:
    fake, url = held
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "ask_knowledge_base", "arguments": {"question": QUESTION}},
    }
    async with _app(app_factory, url) as (client, state):
        jwt = await new_user(client)
        request = asyncio.create_task(client.post("/mcp", json=call, headers={**ACCEPT, **jwt}))
        response = await _delete_while_answering(client, fake, jwt, request)
        rows = await _rows(state)

    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    assert result["isError"] is True
    assert "not_found" in result["content"][0]["text"]
    assert rows == (0, 0)
