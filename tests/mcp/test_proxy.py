"""/mcp through nginx under /chatbot/ (the prefix stripped, the app told by `--root-path`), as
docs/deploy.md sets it up: the official client connects to http://127.0.0.1:<port>/chatbot/mcp,
with nginx's Host header, which the SDK's DNS-rebinding check would refuse if it were on."""

from __future__ import annotations

import httpx
from mcp_types import CallToolResult, TextContent

from tests.mcp.conftest import ProxiedServer, mcp_session

FACT = "The Quillon observatory keeps its telescope lens in a vault beneath Lake Varnis."


def _key(base: str, email: str) -> str:
    with httpx.Client(base_url=base, timeout=60) as client:
        body = {"email": email, "username": email.split("@")[0], "password": "correct horse 1"}
        assert client.post("/api/signup/", json=body).status_code == 201
        login = client.post("/api/login/", json={"email": email, "password": "correct horse 1"})
        token = login.json()["access"]
        created = client.post(
            "/api/keys/", json={"name": "agent"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert created.status_code == 201, created.text
        key = str(created.json()["key"])
        upload = client.post(
            "/api/documents/",
            json={"title": "Observatory", "content": FACT},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert upload.status_code == 201, upload.text
    return key


def _text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def test_tools_through_nginx_under_a_prefix_answer_from_the_document(
    proxied_server: ProxiedServer,
) -> None:
    key = _key(proxied_server.prefixed, "mcp-proxy@example.com")
    async with mcp_session(f"{proxied_server.prefixed}/mcp", key) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        found = await session.call_tool(
            "search_knowledge_base", {"query": "Where is the telescope lens kept?"}
        )
        answer = await session.call_tool(
            "ask_knowledge_base", {"question": "Where is the telescope lens kept?"}
        )
    assert "read_document" in tools
    assert not found.is_error, _text(found)
    assert found.structured_content is not None
    assert found.structured_content["results"][0]["title"] == "Observatory"
    assert not answer.is_error, _text(answer)
    assert answer.structured_content is not None
    assert "Lake Varnis" in answer.structured_content["answer"]
    assert "[1]" in answer.structured_content["answer"]


async def test_post_through_nginx_without_credentials_is_401_with_www_authenticate(
    proxied_server: ProxiedServer,
) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{proxied_server.prefixed}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"] == "not_authenticated"
