"""The MCP tools and collections (issue 16): `collection_id` narrows search, ask and list to one
collection of the caller's; a collection-scoped API key sees its collections alone, as it does
through the REST API; another user's collection is "not found"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.mcp.conftest import mcp_session
from tests.mcp.test_live_mcp import LENS, ORCHARD, structured, text_of, url
from tests.openai.conftest import LiveServer

pytestmark = pytest.mark.database


async def _post(server: LiveServer, path: str, credential: str, body: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        response = await client.post(
            path, json=body, headers={"Authorization": f"Bearer {credential}"}
        )
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _team(server: LiveServer, email: str) -> tuple[str, int, int, int]:
    """A user with a private document and a collection holding another one: (token,
    collection id, private document id, collection document id)."""
    token = server.login(email)
    collection = await _post(server, "/api/collections/", token, {"name": "Observatory team"})
    private = await _post(
        server, "/api/documents/", token, {"title": "Orchard", "content": ORCHARD}
    )
    shared = await _post(
        server,
        "/api/documents/",
        token,
        {"title": "Observatory", "content": LENS, "collection_id": collection["id"]},
    )
    return token, int(collection["id"]), int(private["id"]), int(shared["id"])


async def test_tools_with_collection_id_see_that_collection_alone(
    mcp_server: LiveServer,
) -> None:
    token, collection_id, private_id, in_collection = await _team(
        mcp_server, "mcp-coll-filter@example.com"
    )
    async with mcp_session(url(mcp_server), token) as session:
        everything = structured(await session.call_tool("list_documents", {}))
        narrowed = structured(
            await session.call_tool("list_documents", {"collection_id": collection_id})
        )
        found = structured(
            await session.call_tool(
                "search_knowledge_base",
                {"query": "Which pear tree was planted in 1731?", "collection_id": collection_id},
            )
        )
        answer = structured(
            await session.call_tool(
                "ask_knowledge_base",
                {"question": "Where is the lens kept?", "collection_id": collection_id},
            )
        )
    assert {d["id"] for d in everything["documents"]} == {private_id, in_collection}
    assert [d["id"] for d in narrowed["documents"]] == [in_collection]
    assert narrowed["documents"][0]["collection_id"] == collection_id
    assert {hit["document_id"] for hit in found["results"]} <= {in_collection}
    assert {s["document_id"] for s in answer["sources"]} == {in_collection}


async def test_collection_scoped_key_sees_only_its_collection(mcp_server: LiveServer) -> None:
    token, collection_id, private_id, in_collection = await _team(
        mcp_server, "mcp-coll-scoped@example.com"
    )
    key = mcp_server.create_key(token, "team-agent", collection_ids=[collection_id])["key"]
    async with mcp_session(url(mcp_server), key) as session:
        listed = structured(await session.call_tool("list_documents", {}))
        found = structured(
            await session.call_tool(
                "search_knowledge_base", {"query": "Which pear tree was planted in 1731?"}
            )
        )
        private = await session.call_tool("read_document", {"document_id": private_id})
        readable = await session.call_tool("read_document", {"document_id": in_collection})
    assert [d["id"] for d in listed["documents"]] == [in_collection]
    assert private_id not in {hit["document_id"] for hit in found["results"]}
    assert private.is_error
    assert "not_found (404)" in text_of(private)
    assert structured(readable)["text"] == LENS


async def test_tools_with_another_users_collection_are_not_found(
    mcp_server: LiveServer,
) -> None:
    _, collection_id, _, _ = await _team(mcp_server, "mcp-coll-owner@example.com")
    intruder = mcp_server.new_key("mcp-coll-intruder@example.com")
    async with mcp_session(url(mcp_server), intruder) as session:
        results = [
            await session.call_tool(name, {**arguments, "collection_id": collection_id})
            for name, arguments in (
                ("list_documents", {}),
                ("search_knowledge_base", {"query": "lens"}),
                ("ask_knowledge_base", {"question": "Where is the lens kept?"}),
            )
        ]
    for result in results:
        assert result.is_error
        assert "collection_not_found (404): Collection not found." in text_of(result)
