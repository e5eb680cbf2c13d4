"""/mcp through nginx under /chatbot/ (the prefix stripped, the app told by `--root-path`), as
docs/deploy.md sets it up: the official client connects to http://127.0.0.1:<port>/chatbot/mcp,
with nginx's Host header, which the SDK's DNS-rebinding check would refuse if it were on."""

from __future__ import annotations

import httpx
from mcp_types import CallToolResult, TextContent

from tests.mcp.conftest import ProxiedServer, Replicas, mcp_session, upload_with_new_key


def _text(result: CallToolResult) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


async def test_tools_through_nginx_under_a_prefix_answer_from_the_document(
    proxied_server: ProxiedServer,
) -> None:
    key = upload_with_new_key(proxied_server.prefixed, "mcp-proxy@example.com")
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


async def test_one_session_through_two_replicas_is_served_by_both(replicas: Replicas) -> None:
    async with mcp_session(f"{replicas.proxy}/mcp", replicas.key) as session:
        searches = [
            await session.call_tool(
                "search_knowledge_base", {"query": "Where is the telescope lens kept?"}
            )
            for _ in range(4)
        ]
        answers = [
            await session.call_tool(
                "ask_knowledge_base", {"question": "Where is the telescope lens kept?"}
            )
            for _ in range(2)
        ]
    for result in [*searches, *answers]:
        assert not result.is_error, _text(result)
        assert result.structured_content is not None
    assert all(s.structured_content["results"][0]["title"] == "Observatory" for s in searches)
    # Both turns in the key's one conversation, whichever replica stored them.
    conversations = {a.structured_content["conversation_id"] for a in answers}
    assert len(conversations) == 1
    for log in replicas.logs:
        assert '"POST /mcp HTTP/1.1" 200' in log.read_text()
