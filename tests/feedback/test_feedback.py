"""Ratings of answers: the owner's lifecycle, isolation between users, what the histories
show, deletion with the message, the admin export (JSON pages and JSON lines), metrics."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.api.state import State
from app.feedback.models import MessageFeedback
from tests.conftest import make_admin, new_user
from tests.usage.conftest import RemoteFactory


async def ask(client: httpx.AsyncClient, headers: dict[str, str], question: str) -> dict[str, Any]:
    """One turn; the stored bot message (the newest of the caller's history)."""
    response = await client.post("/api/chat/", json={"message": question}, headers=headers)
    assert response.status_code == 200, response.text
    history = (await client.get("/api/chat-history/", headers=headers)).json()
    bot: dict[str, Any] = [m for m in history if m["role"] == "bot"][-1]
    return bot


async def feedback_rows(state: State) -> int:
    async with state["sessions"]() as session:
        query = select(func.count()).select_from(MessageFeedback)
        return int((await session.execute(query)).scalar_one())


async def test_put_feedback_on_own_answer_shows_replaces_and_deletes(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, _):
        headers = await new_user(client)
        answer = await ask(client, headers, "What is the capital of France?")
        url = f"/api/messages/{answer['id']}/feedback/"

        first = await client.put(url, json={"rating": "up"}, headers=headers)
        second = await client.put(
            url, json={"rating": "down", "comment": "It cited nothing."}, headers=headers
        )

        assert first.status_code == 200, first.text
        assert first.json()["rating"] == "up"
        assert second.json()["rating"] == "down"
        history = (await client.get("/api/chat-history/", headers=headers)).json()
        shown = {m["id"]: m["feedback"] for m in history}
        assert shown[answer["id"]]["rating"] == "down"
        assert shown[answer["id"]]["comment"] == "It cited nothing."
        assert all(f is None for mid, f in shown.items() if mid != answer["id"])
        conversation = (await client.get("/api/conversations/", headers=headers)).json()
        page = await client.get(
            f"/api/conversations/{conversation['items'][0]['id']}/messages/", headers=headers
        )
        rated = [m for m in page.json()["items"] if m["id"] == answer["id"]]
        assert rated[0]["feedback"]["rating"] == "down"

        deleted = await client.delete(url, headers=headers)

        assert deleted.status_code == 204
        history = (await client.get("/api/chat-history/", headers=headers)).json()
        assert all(m["feedback"] is None for m in history)


async def test_put_feedback_on_others_or_question_or_unknown_is_404(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, state):
        owner = await new_user(client, "owner@example.com")
        intruder = await new_user(client, "intruder@example.com")
        answer = await ask(client, owner, "What is the capital of France?")
        question_id = answer["id"] - 1

        for headers, message_id in (
            (intruder, answer["id"]),  # another user's answer
            (owner, question_id),  # a question, not an answer
            (owner, 2_000_000),  # no such message
        ):
            url = f"/api/messages/{message_id}/feedback/"
            put = await client.put(url, json={"rating": "down"}, headers=headers)
            delete = await client.delete(url, headers=headers)
            assert put.status_code == 404, put.text
            assert put.json()["error"] == "message_not_found"
            assert delete.status_code == 404
        assert await feedback_rows(state) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"rating": "meh"},
        {"rating": "up", "comment": "x" * 2_001},
        {"rating": "up", "comment": "nul \u0000 inside"},
        {"rating": "up", "comment": "lone \ud800 surrogate"},
        {},
    ],
)
async def test_put_feedback_bad_body_is_422_and_stores_nothing(
    remote: RemoteFactory, body: dict[str, Any]
) -> None:
    async with remote() as (client, state):
        headers = await new_user(client)
        answer = await ask(client, headers, "What is the capital of France?")

        response = await client.put(
            f"/api/messages/{answer['id']}/feedback/",
            content=json.dumps(body),  # json.dumps escapes the lone surrogate as \ud800
            headers={**headers, "Content-Type": "application/json"},
        )

        assert response.status_code == 422, response.text
        assert await feedback_rows(state) == 0


async def test_delete_conversation_deletes_its_feedback(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        headers = await new_user(client)
        answer = await ask(client, headers, "What is the capital of France?")
        await client.put(
            f"/api/messages/{answer['id']}/feedback/", json={"rating": "up"}, headers=headers
        )
        assert await feedback_rows(state) == 1
        conversation = (await client.get("/api/conversations/", headers=headers)).json()

        await client.delete(
            f"/api/conversations/{conversation['items'][0]['id']}/", headers=headers
        )

        assert await feedback_rows(state) == 0


async def test_admin_exports_rated_answers_as_json_lines_and_pages(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, state):
        admin = await new_user(client, "admin@example.com")
        await make_admin(state, "admin@example.com")
        users = [await new_user(client, f"user{n}@example.com") for n in range(3)]
        rated: dict[int, tuple[str, str]] = {}
        for n, headers in enumerate(users):
            question = f"Question number {n} about France?"
            answer = await ask(client, headers, question)
            rating = "down" if n % 2 else "up"
            await client.put(
                f"/api/messages/{answer['id']}/feedback/",
                json={"rating": rating, "comment": f"comment {n}"},
                headers=headers,
            )
            rated[answer["id"]] = (rating, question)

        export = await client.get("/api/admin/feedback/?format=jsonl", headers=admin)

        assert export.status_code == 200, export.text
        assert export.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in export.text.splitlines()]
        assert {item["message_id"] for item in lines} == set(rated)
        for item in lines:
            rating, question = rated[item["message_id"]]
            assert item["rating"] == rating
            assert item["question"] == question
            assert item["answer"].endswith("Paris is the capital of France.")
            assert item["comment"].startswith("comment ")
            assert "sources" in item
        downs = await client.get("/api/admin/feedback/?format=jsonl&rating=down", headers=admin)
        assert [json.loads(x)["rating"] for x in downs.text.splitlines()] == ["down"]
        first = (await client.get("/api/admin/feedback/?limit=2", headers=admin)).json()
        rest = await client.get(
            f"/api/admin/feedback/?limit=2&cursor={first['next_cursor']}", headers=admin
        )
        paged = [i["message_id"] for i in first["items"] + rest.json()["items"]]
        assert sorted(paged) == sorted(rated)
        assert rest.json()["next_cursor"] is None


async def test_feedback_is_counted_in_metrics_by_rating(remote: RemoteFactory) -> None:
    async with remote() as (client, _):
        headers = await new_user(client)
        answer = await ask(client, headers, "What is the capital of France?")
        before = await client.get("/metrics")

        await client.put(
            f"/api/messages/{answer['id']}/feedback/", json={"rating": "down"}, headers=headers
        )

        after = await client.get("/metrics")
        assert (
            _sample(after.text, 'answer_feedback_total{rating="down"}')
            == _sample(before.text, 'answer_feedback_total{rating="down"}') + 1
        )


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
