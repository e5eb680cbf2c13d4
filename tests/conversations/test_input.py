"""Text the database could not store is refused before anything is written."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import new_user


@pytest.mark.parametrize("path", ["/api/chat/", "/api/chat/stream/"])
async def test_chat_message_with_nul_is_422(client: httpx.AsyncClient, path: str) -> None:
    headers = await new_user(client)

    response = await client.post(path, json={"message": "bad\u0000byte"}, headers=headers)

    assert response.status_code == 422
    history = await client.get("/api/chat-history/", headers=headers)
    assert history.json() == []


async def test_create_conversation_title_with_nul_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)

    response = await client.post(
        "/api/conversations/", json={"title": "bad\u0000title"}, headers=headers
    )

    assert response.status_code == 422
    assert (await client.get("/api/conversations/", headers=headers)).json()["items"] == []
