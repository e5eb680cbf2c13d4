"""`/api/conversations/` and the chat endpoints' `conversation_id`, on the embedded defaults."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from app.api.state import State
from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from tests.conftest import AppFactory, new_user

LEAVE = (
    "Employees receive 25 days of paid annual leave per calendar year. Up to five unused days "
    "can be carried over until the end of March of the following year."
)


async def _create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> Any:
    response = await client.post("/api/conversations/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _chat(
    client: httpx.AsyncClient, headers: dict[str, str], message: str, **body: Any
) -> Any:
    response = await client.post("/api/chat/", json={"message": message, **body}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _count(state: State, model: type[Any]) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_create_conversation_with_title_returns_201(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)

    body = await _create(client, headers, title="  Leave questions ")

    assert body["title"] == "Leave questions"
    assert set(body) == {"id", "title", "created_at", "updated_at"}


async def test_create_conversation_without_body_is_untitled(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)

    response = await client.post("/api/conversations/", headers=headers)

    assert response.status_code == 201
    assert response.json()["title"] == ""


async def test_untitled_conversation_first_question_becomes_title(
    app_factory: AppFactory,
) -> None:
    async with app_factory(conversation_title_chars=20) as (client, _):
        headers = await new_user(client)
        created = await _create(client, headers)

        await _chat(
            client,
            headers,
            "How many days of annual leave do I get?",
            conversation_id=created["id"],
        )
        await _chat(client, headers, "A second question", conversation_id=created["id"])

        title = (await client.get(f"/api/conversations/{created['id']}/", headers=headers)).json()
        assert title["title"] == "How many days of…"


async def test_chat_without_conversation_id_starts_then_continues_one(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)

    first = await _chat(client, headers, "What is the leave policy?")
    second = await _chat(client, headers, "And for contractors?")

    assert first["conversation_id"] == second["conversation_id"]
    assert await _count(state, Conversation) == 1
    listed = (await client.get("/api/conversations/", headers=headers)).json()
    assert [c["title"] for c in listed["items"]] == ["What is the leave policy?"]


async def test_chat_without_conversation_id_continues_most_recently_active(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    older = await _create(client, headers, title="older")
    newer = await _create(client, headers, title="newer")
    await _chat(client, headers, "to the older one", conversation_id=older["id"])

    turn = await _chat(client, headers, "no id given")

    assert turn["conversation_id"] == older["id"] != newer["id"]


async def test_chat_with_conversation_id_stores_turn_there(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    chosen = await _create(client, headers, title="chosen")
    await _create(client, headers, title="newer")

    turn = await _chat(client, headers, "In the chosen one", conversation_id=chosen["id"])

    assert turn["conversation_id"] == chosen["id"]
    page = (
        await client.get(f"/api/conversations/{chosen['id']}/messages/", headers=headers)
    ).json()
    assert [(m["role"], m["content"]) for m in page["items"]] == [
        ("user", "In the chosen one"),
        ("bot", turn["response"]),
    ]


async def test_chat_with_another_users_conversation_is_404_and_stores_nothing(
    client: httpx.AsyncClient, state: State
) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    adas = await _create(client, ada, title="private")

    response = await client.post(
        "/api/chat/", json={"message": "hi", "conversation_id": adas["id"]}, headers=bob
    )
    streamed = await client.post(
        "/api/chat/stream/", json={"message": "hi", "conversation_id": adas["id"]}, headers=bob
    )

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert streamed.status_code == 404
    assert await _count(state, ChatMessage) == 0


@pytest.mark.parametrize("conversation_id", [0, -1, "x", 2**40])
async def test_chat_bad_conversation_id_is_422(
    client: httpx.AsyncClient, conversation_id: object
) -> None:
    headers = await new_user(client)

    response = await client.post(
        "/api/chat/", json={"message": "hi", "conversation_id": conversation_id}, headers=headers
    )

    assert response.status_code == 422


async def test_stream_done_event_carries_conversation_id(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    conversation = await _create(client, headers)

    response = await client.post(
        "/api/chat/stream/",
        json={"message": "Anything about leave?", "conversation_id": conversation["id"]},
        headers=headers,
    )

    assert response.status_code == 200
    done = response.text.split("event: done\ndata: ")[1].split("\n")[0]
    assert f'"conversation_id": {conversation["id"]}' in done


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", "/"), ("PATCH", "/"), ("DELETE", "/"), ("GET", "/messages/")],
)
async def test_other_users_conversation_is_404(
    client: httpx.AsyncClient, method: str, suffix: str
) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    adas = await _create(client, ada, title="private")

    response = await client.request(
        method, f"/api/conversations/{adas['id']}{suffix}", json={"title": "mine"}, headers=bob
    )

    assert response.status_code == 404
    still = await client.get(f"/api/conversations/{adas['id']}/", headers=ada)
    assert still.json()["title"] == "private"


async def test_list_conversations_shows_only_own(client: httpx.AsyncClient) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    await _create(client, ada, title="ada's")
    await _create(client, bob, title="bob's")

    listed = (await client.get("/api/conversations/", headers=ada)).json()

    assert [c["title"] for c in listed["items"]] == ["ada's"]
    assert listed["next_cursor"] is None


async def test_list_conversations_pages_most_recent_activity_first(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    made = [await _create(client, headers, title=f"c{n}") for n in range(5)]
    await _chat(client, headers, "revive", conversation_id=made[1]["id"])

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(f"/api/conversations/{query}", headers=headers)).json()
        pages += 1
        seen += [c["title"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ["c1", "c4", "c3", "c2", "c0"]
    assert pages == 3


async def test_list_conversations_limit_capped_at_maximum(app_factory: AppFactory) -> None:
    async with app_factory(conversations_page_max=2) as (client, _):
        headers = await new_user(client)
        for n in range(3):
            await _create(client, headers, title=f"c{n}")

        page = (await client.get("/api/conversations/?limit=50", headers=headers)).json()

        assert len(page["items"]) == 2
        assert page["next_cursor"] is not None


@pytest.mark.parametrize("cursor", ["garbage!", "bm90IGpzb24", "WyJ4IiwxXQ", "WzBd"])
async def test_list_conversations_bad_cursor_is_422(client: httpx.AsyncClient, cursor: str) -> None:
    headers = await new_user(client)

    response = await client.get(f"/api/conversations/?cursor={cursor}", headers=headers)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


async def test_messages_page_oldest_first_with_sources(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    document = await client.post(
        "/api/documents/", json={"title": "Leave", "content": LEAVE}, headers=headers
    )
    assert document.status_code == 201
    conversation = await _create(client, headers)
    for question in ("How many days of annual leave do I get?", "Until when can I carry it?"):
        await _chat(client, headers, question, conversation_id=conversation["id"])

    url = f"/api/conversations/{conversation['id']}/messages/"
    first = (await client.get(f"{url}?limit=3", headers=headers)).json()
    rest = (
        await client.get(f"{url}?limit=3&cursor={first['next_cursor']}", headers=headers)
    ).json()

    items = first["items"] + rest["items"]
    assert [m["role"] for m in items] == ["user", "bot", "user", "bot"]
    assert items[0]["content"] == "How many days of annual leave do I get?"
    assert items[1]["sources"][0]["title"] == "Leave"
    assert items[1]["interrupted"] is False
    assert rest["next_cursor"] is None
    assert [m["id"] for m in items] == sorted(m["id"] for m in items)


async def test_rename_conversation_changes_title(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    conversation = await _create(client, headers, title="old")

    response = await client.patch(
        f"/api/conversations/{conversation['id']}/", json={"title": "new"}, headers=headers
    )

    assert response.status_code == 200
    assert response.json()["title"] == "new"
    assert response.json()["updated_at"] >= conversation["updated_at"]


@pytest.mark.parametrize("title", ["", "   ", "x" * 201, "bad\u0000title"])
async def test_rename_conversation_bad_title_is_422(client: httpx.AsyncClient, title: str) -> None:
    headers = await new_user(client)
    conversation = await _create(client, headers, title="old")

    response = await client.patch(
        f"/api/conversations/{conversation['id']}/", json={"title": title}, headers=headers
    )

    assert response.status_code == 422


async def test_delete_conversation_removes_its_messages_only(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    doomed = await _create(client, headers, title="doomed")
    kept = await _create(client, headers, title="kept")
    await _chat(client, headers, "one", conversation_id=doomed["id"])
    await _chat(client, headers, "two", conversation_id=kept["id"])

    response = await client.delete(f"/api/conversations/{doomed['id']}/", headers=headers)

    assert response.status_code == 204
    assert (
        await client.get(f"/api/conversations/{doomed['id']}/", headers=headers)
    ).status_code == 404
    history = (await client.get("/api/chat-history/", headers=headers)).json()
    assert [m["content"] for m in history if m["role"] == "user"] == ["two"]
    assert await _count(state, ChatMessage) == 2


async def test_history_conversation_filter_returns_that_conversation(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    a = await _create(client, headers, title="a")
    b = await _create(client, headers, title="b")
    await _chat(client, headers, "in a", conversation_id=a["id"])
    await _chat(client, headers, "in b", conversation_id=b["id"])

    only_a = await client.get(f"/api/chat-history/?conversation_id={a['id']}", headers=headers)
    everything = (await client.get("/api/chat-history/", headers=headers)).json()

    assert [m["content"] for m in only_a.json() if m["role"] == "user"] == ["in a"]
    assert [m["content"] for m in everything if m["role"] == "user"] == ["in a", "in b"]
    # `feedback` (issue 19) is added to every message: null on questions and unrated answers.
    assert set(everything[0]) == {"id", "role", "content", "timestamp", "sources", "feedback"}


async def test_history_other_users_conversation_filter_is_404(client: httpx.AsyncClient) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    adas = await _create(client, ada, title="private")

    response = await client.get(f"/api/chat-history/?conversation_id={adas['id']}", headers=bob)

    assert response.status_code == 404


async def test_delete_user_row_removes_conversations_and_messages(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    await _chat(client, headers, "hello")

    async with state["sessions"].begin() as session:
        await session.execute(text("DELETE FROM users"))

    assert await _count(state, Conversation) == 0
    assert await _count(state, ChatMessage) == 0


async def test_delete_me_removes_conversations(client: httpx.AsyncClient, state: State) -> None:
    headers = await new_user(client)
    await _chat(client, headers, "hello")
    await _create(client, headers, title="empty one")

    response = await client.request(
        "DELETE", "/api/me/", json={"password": "correct horse 1"}, headers=headers
    )

    assert response.status_code == 204, response.text
    assert await _count(state, Conversation) == 0
    assert await _count(state, ChatMessage) == 0


async def test_conversation_ids_are_never_reused(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    first = await _create(client, headers, title="first")
    await client.delete(f"/api/conversations/{first['id']}/", headers=headers)

    second = await _create(client, headers, title="second")

    assert second["id"] > first["id"]
