"""The admin tests answer through the wire-fake LLM of tests/usage (no model to load)."""

from __future__ import annotations

from typing import Any

import httpx

from app.api.state import State
from tests.conftest import make_admin, new_user
from tests.usage.conftest import hf, hf_server, remote

__all__ = ["admin_headers", "create_key", "hf", "hf_server", "remote"]


async def admin_headers(client: httpx.AsyncClient, state: State, email: str) -> dict[str, str]:
    headers = await new_user(client, email)
    await make_admin(state, email)
    return headers


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, str]:
    """A new API key of the caller (a login token), as an Authorization header."""
    response = await client.post("/api/keys/", json={"name": "k", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}
