"""What a history request costs the database: the principal's lookup and one query for the
messages with their feedback (it was three statements on three sessions)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event

from app.api.state import State
from tests.conftest import new_user


async def test_history_with_feedback_two_statements_and_ratings_shown(
    running: tuple[httpx.AsyncClient, State],
) -> None:
    client, state = running
    headers = await new_user(client)
    for question in ("What is the capital of France?", "And of Italy?"):
        response = await client.post("/api/chat/", json={"message": question}, headers=headers)
        assert response.status_code == 200, response.text
    history = (await client.get("/api/chat-history/", headers=headers)).json()
    first_answer = next(m["id"] for m in history if m["role"] == "bot")
    rated = await client.put(
        f"/api/messages/{first_answer}/feedback/",
        json={"rating": "down", "comment": "No source."},
        headers=headers,
    )
    assert rated.status_code == 200, rated.text
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = state["engine"].sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        response = await client.get("/api/chat-history/?limit=10", headers=headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert response.status_code == 200
    shown = {m["id"]: m["feedback"] for m in response.json()}
    assert shown[first_answer] == {
        "rating": "down",
        "comment": "No source.",
        "updated_at": rated.json()["updated_at"],
    }
    assert sum(f is not None for f in shown.values()) == 1
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, statements  # the user row, then messages joined with feedback
    assert "message_feedback" in selects[1]
