from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select

from app.api.state import State
from app.chat.models import ChatMessage
from tests.conftest import AppFactory, new_user

LIGHTHOUSE = (
    "The Korvath lighthouse was painted teal in 1911. Its first keeper was Ilse Marren, "
    "who kept a logbook of every storm. The lamp burns whale oil no longer."
)


async def _add_document(client: httpx.AsyncClient, headers: dict[str, str], **body: object) -> int:
    response = await client.post("/api/documents/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _messages(state: State) -> list[ChatMessage]:
    async with state["sessions"]() as session:
        return list((await session.execute(select(ChatMessage).order_by(ChatMessage.id))).scalars())


async def test_chat_with_relevant_document_cites_it(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    doc_id = await _add_document(client, headers, title="Lighthouse", content=LIGHTHOUSE)
    response = await client.post(
        "/api/chat/",
        json={"message": "Who was the first keeper of the lighthouse?"},
        headers=headers,
    )
    assert response.status_code == 200
    body = response.json()
    assert "Ilse Marren" in body["response"]
    assert "[1]" in body["response"]
    assert body["sources"][0]["document_id"] == doc_id
    assert body["sources"][0]["title"] == "Lighthouse"
    assert {"chunk_id", "score", "snippet"} <= set(body["sources"][0])
    stored = await _messages(state)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "Who was the first keeper of the lighthouse?"),
        ("bot", body["response"]),
    ]
    assert stored[1].sources
    assert stored[1].sources[0]["document_id"] == doc_id


async def test_chat_without_relevant_document_refuses(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/chat/", json={"message": "What is the capital of Mongolia?"}, headers=headers
    )
    assert response.status_code == 200
    assert "couldn't find anything" in response.json()["response"]
    assert response.json()["sources"] == []


@pytest.mark.parametrize("message", ["", "   \n\t "])
async def test_chat_empty_message_is_422(client: httpx.AsyncClient, message: str) -> None:
    headers = await new_user(client)
    response = await client.post("/api/chat/", json={"message": message}, headers=headers)
    assert response.status_code == 422


async def test_chat_message_over_limit_is_422_and_not_stored(
    app_factory: AppFactory,
) -> None:
    async with app_factory(chat_max_message_chars=50) as (client, state):
        headers = await new_user(client)
        response = await client.post("/api/chat/", json={"message": "x" * 51}, headers=headers)
        assert response.status_code == 422
        assert "50 characters" in response.json()["detail"]
        assert await _messages(state) == []


async def test_chat_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat/", json={"message": "hello"})
    assert response.status_code == 401


async def test_chat_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/chat/", content=b"{not json", headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_history_returns_own_messages_oldest_first(client: httpx.AsyncClient) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    for text in ("first question", "second question"):
        assert (await client.post("/api/chat/", json={"message": text}, headers=ada)).is_success
    assert (await client.post("/api/chat/", json={"message": "bob's"}, headers=bob)).is_success
    history = (await client.get("/api/chat-history/", headers=ada)).json()
    assert [(m["role"], m["content"]) for m in history][::2] == [
        ("user", "first question"),
        ("user", "second question"),
    ]
    assert [m["role"] for m in history] == ["user", "bot", "user", "bot"]
    assert all(set(m) >= {"id", "role", "content", "timestamp"} for m in history)
    assert "bob's" not in {m["content"] for m in history}


async def test_history_limit_and_before_page_back(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    for n in range(3):
        await client.post("/api/chat/", json={"message": f"question {n}"}, headers=headers)
    newest = (await client.get("/api/chat-history/?limit=2", headers=headers)).json()
    assert next(m["content"] for m in newest) == "question 2"
    older = (
        await client.get(f"/api/chat-history/?limit=2&before={newest[0]['id']}", headers=headers)
    ).json()
    assert next(m["content"] for m in older) == "question 1"
    assert older[-1]["id"] < newest[0]["id"]


async def test_history_limit_is_capped_at_maximum(app_factory: AppFactory) -> None:
    async with app_factory(chat_history_max_limit=3, chat_history_default_limit=2) as (client, _):
        headers = await new_user(client)
        for n in range(3):
            await client.post("/api/chat/", json={"message": f"q{n}"}, headers=headers)
        assert len((await client.get("/api/chat-history/", headers=headers)).json()) == 2
        capped = await client.get("/api/chat-history/?limit=500", headers=headers)
        assert len(capped.json()) == 3


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "before=-1", f"before={2**70}"])
async def test_history_bad_query_is_422(client: httpx.AsyncClient, query: str) -> None:
    headers = await new_user(client)
    assert (await client.get(f"/api/chat-history/?{query}", headers=headers)).status_code == 422


async def test_chat_50_concurrent_requests_all_succeed(
    client: httpx.AsyncClient, state: State
) -> None:
    users = [await new_user(client, f"user{n}@example.com") for n in range(5)]
    await _add_document(client, users[0], title="Lighthouse", content=LIGHTHOUSE)

    async def ask(n: int) -> httpx.Response:
        return await client.post(
            "/api/chat/",
            json={"message": f"When was the lighthouse painted? #{n}"},
            headers=users[n % 5],
        )

    responses = await asyncio.gather(*(ask(n) for n in range(50)))
    assert [r.status_code for r in responses] == [200] * 50
    assert len(await _messages(state)) == 100
