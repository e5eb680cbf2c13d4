"""A team in the in-process app: an owner, an editor, a viewer, a non-member and an
administrator who is not a member, around one collection."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.api.state import State
from tests.conftest import make_admin, new_user

ROLES = ("owner", "editor", "viewer")


@dataclass
class Team:
    client: httpx.AsyncClient
    state: State
    collection_id: int
    headers: dict[str, dict[str, str]]  # owner, editor, viewer, outsider, admin
    user_ids: dict[str, int]

    async def add_document(
        self, who: str, title: str, content: str, **fields: Any
    ) -> dict[str, Any]:
        response = await self.client.post(
            "/api/documents/",
            json={"title": title, "content": content, **fields},
            headers=self.headers[who],
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    response = await client.get("/api/me/", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


async def make_team(client: httpx.AsyncClient, state: State) -> Team:
    headers = {
        who: await new_user(client, f"{who}@example.com")
        for who in ("owner", "editor", "viewer", "outsider", "admin")
    }
    await make_admin(state, "admin@example.com")
    ids = {who: await user_id(client, h) for who, h in headers.items()}
    created = await client.post(
        "/api/collections/", json={"name": "Runbooks"}, headers=headers["owner"]
    )
    assert created.status_code == 201, created.text
    collection_id = int(created.json()["id"])
    for who in ("editor", "viewer"):
        added = await client.post(
            f"/api/collections/{collection_id}/members/",
            json={"email": f"{who}@example.com", "role": who},
            headers=headers["owner"],
        )
        assert added.status_code == 201, added.text
    return Team(client, state, collection_id, headers, ids)


@pytest.fixture
async def team(client: httpx.AsyncClient, state: State) -> Team:
    return await make_team(client, state)
