"""The MCP server at /mcp of `chatbot serve`, driven by the official `mcp` client (Streamable
HTTP, the credential on its HTTP client): the tools over uploaded documents, isolation between
two users' keys, credentials, tool errors, and the turn `ask_knowledge_base` stores."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent

from tests.fakes.huggingface import FakeHuggingFace, delay, status
from tests.mcp.conftest import ANSWER, CHAT_PER_MINUTE, mcp_session
from tests.openai.conftest import LiveServer

pytestmark = pytest.mark.database

LENS = (
    "The Quillon observatory keeps its telescope lens in a vault beneath Lake Varnis. "
    "The vault is opened once a year, on the night of the autumn equinox."
)
LENS_QUESTION = "Where does the Quillon observatory keep its telescope lens?"
ORCHARD = (
    "Marrowfield orchard grows forty varieties of pear. Its oldest tree, the Grey Warden, "
    "was planted in 1731 and still fruits every September."
)
TOOLS = {"search_knowledge_base", "ask_knowledge_base", "list_documents", "read_document"}


def url(server: LiveServer) -> str:
    return f"{server.url}/mcp"


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    content: dict[str, Any] = result.structured_content
    assert content is not None
    return content


async def rest(
    server: LiveServer, method: str, path: str, credential: str, **kwargs: Any
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        return await client.request(
            method, path, headers={"Authorization": f"Bearer {credential}"}, **kwargs
        )


async def test_initialize_and_list_tools_with_a_key_describes_four_tools(
    mcp_server: LiveServer,
) -> None:
    key = mcp_server.new_key("mcp-tools@example.com")
    async with mcp_session(url(mcp_server), key) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert len(tool.description or "") > 60
        assert tool.output_schema is not None
    search = tools["search_knowledge_base"].input_schema
    assert search["required"] == ["query"]
    assert search["properties"]["top_k"]["maximum"] == 20
    assert search["properties"]["top_k"]["default"] == 5
    read = tools["read_document"].input_schema["properties"]
    assert read["max_chars"]["default"] == 8000
    assert tools["ask_knowledge_base"].input_schema["properties"]["question"]["maxLength"] == 500


async def test_search_with_a_key_returns_the_uploaded_chunk_structured_and_as_text(
    mcp_server: LiveServer,
) -> None:
    key = mcp_server.new_key("mcp-search@example.com")
    document_id = mcp_server.upload(key, "Observatory", LENS)
    async with mcp_session(url(mcp_server), key) as session:
        result = await session.call_tool(
            "search_knowledge_base", {"query": LENS_QUESTION, "top_k": 3}
        )
    hits = structured(result)["results"]
    assert hits, text_of(result)
    best = hits[0]
    assert best["document_id"] == document_id
    assert best["title"] == "Observatory"
    assert best["chunk_id"].startswith(f"doc{document_id}-")
    assert "Lake Varnis" in best["text"]
    assert 0 < best["score"] <= 1
    assert "Observatory" in text_of(result)
    assert "Lake Varnis" in text_of(result)


async def test_search_with_top_k_over_20_is_a_tool_error(mcp_server: LiveServer) -> None:
    key = mcp_server.new_key("mcp-topk@example.com")
    async with mcp_session(url(mcp_server), key) as session:
        result = await session.call_tool("search_knowledge_base", {"query": "lens", "top_k": 21})
        # The session survives a tool error.
        tools = await session.list_tools()
    assert result.is_error
    assert "top_k" in text_of(result)
    assert "20" in text_of(result)
    assert len(tools.tools) == len(TOOLS)


async def test_ask_without_conversation_id_answers_with_citations_and_stores_the_turn(
    mcp_server: LiveServer, fake: FakeHuggingFace
) -> None:
    token = mcp_server.login("mcp-ask@example.com")
    key = str(mcp_server.create_key(token)["key"])
    document_id = mcp_server.upload(key, "Observatory", LENS)
    # A conversation of the user's own, more recently active than any MCP one: MCP turns must
    # not land in it.
    chat = await rest(
        mcp_server, "POST", "/api/chat/", token, json={"message": "Hello from the web chat"}
    )
    assert chat.status_code == 200, chat.text
    web_conversation = chat.json()["conversation_id"]

    async with mcp_session(url(mcp_server), key) as session:
        first = structured(
            await session.call_tool("ask_knowledge_base", {"question": LENS_QUESTION})
        )
        second = structured(
            await session.call_tool("ask_knowledge_base", {"question": "When is it opened?"})
        )

    assert first["answer"] == ANSWER
    assert "[1]" in first["answer"]
    assert first["sources"][0]["n"] == 1
    assert first["sources"][0]["document_id"] == document_id
    assert first["grounded"] is True
    # Both turns in one conversation of this key, not the web chat's.
    assert first["conversation_id"] == second["conversation_id"] != web_conversation
    history = await rest(
        mcp_server,
        "GET",
        "/api/chat-history/",
        token,
        params={"conversation_id": first["conversation_id"]},
    )
    assert history.status_code == 200
    messages = [(m["role"], m["content"]) for m in history.json()]
    assert messages == [
        ("user", LENS_QUESTION),
        ("bot", ANSWER),
        ("user", "When is it opened?"),
        ("bot", ANSWER),
    ]
    assert history.json()[1]["sources"][0]["document_id"] == document_id
    # The second turn had the first as memory.
    generation = [r for r in fake.requests if r.path == "/v1/chat/completions"][-1].json
    assert any(LENS_QUESTION in str(m.get("content")) for m in generation["messages"])


async def test_ask_with_two_keys_keeps_one_conversation_per_key(mcp_server: LiveServer) -> None:
    token = mcp_server.login("mcp-two-keys@example.com")
    first_key = str(mcp_server.create_key(token, "first")["key"])
    second_key = str(mcp_server.create_key(token, "second")["key"])
    mcp_server.upload(first_key, "Observatory", LENS)
    conversations = []
    for key in (first_key, second_key, first_key):
        async with mcp_session(url(mcp_server), key) as session:
            result = await session.call_tool("ask_knowledge_base", {"question": LENS_QUESTION})
        conversations.append(structured(result)["conversation_id"])
    assert conversations[0] == conversations[2] != conversations[1]


async def test_ask_with_conversation_id_continues_that_conversation(
    mcp_server: LiveServer,
) -> None:
    token = mcp_server.login("mcp-continue@example.com")
    key = str(mcp_server.create_key(token)["key"])
    created = await rest(
        mcp_server, "POST", "/api/conversations/", token, json={"title": "Research"}
    )
    assert created.status_code == 201
    async with mcp_session(url(mcp_server), key) as session:
        result = await session.call_tool(
            "ask_knowledge_base",
            {"question": LENS_QUESTION, "conversation_id": created.json()["id"]},
        )
    assert structured(result)["conversation_id"] == created.json()["id"]


async def test_ask_with_another_users_conversation_is_not_found(mcp_server: LiveServer) -> None:
    owner = mcp_server.login("mcp-conv-owner@example.com")
    created = await rest(mcp_server, "POST", "/api/conversations/", owner, json={"title": "Mine"})
    intruder = mcp_server.new_key("mcp-conv-intruder@example.com")
    async with mcp_session(url(mcp_server), intruder) as session:
        result = await session.call_tool(
            "ask_knowledge_base",
            {"question": LENS_QUESTION, "conversation_id": created.json()["id"]},
        )
    assert result.is_error
    assert text_of(result).endswith("not_found (404): Conversation not found.")


async def test_ask_with_a_question_over_the_limit_is_a_tool_error_and_stores_nothing(
    mcp_server: LiveServer,
) -> None:
    token = mcp_server.login("mcp-long@example.com")
    key = str(mcp_server.create_key(token)["key"])
    async with mcp_session(url(mcp_server), key) as session:
        result = await session.call_tool("ask_knowledge_base", {"question": "x" * 501})
    # A NUL is refused at the edge, for every route alike, before the MCP layer.
    nul = await rest(
        mcp_server,
        "POST",
        "/mcp",
        key,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "ask_knowledge_base", "arguments": {"question": "lens\x00"}},
        },
    )
    assert result.is_error
    assert "question" in text_of(result)
    assert "500" in text_of(result)
    assert nul.status_code == 422
    assert nul.json()["error"] == "validation_error"
    history = await rest(mcp_server, "GET", "/api/chat-history/", token)
    assert history.json() == []


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (status(503), "upstream_unavailable (503)"),
        (status(400), "upstream_error (502)"),
        (delay(3), "upstream_timeout (504)"),
    ],
    ids=["unavailable", "bad-answer", "slow"],
)
async def test_ask_with_the_llm_failing_is_a_tool_error_with_the_rest_status(
    mcp_server: LiveServer, fake: FakeHuggingFace, fault: Any, code: str
) -> None:
    key = mcp_server.new_key(f"mcp-upstream-{code.split()[0]}@example.com")
    mcp_server.upload(key, "Observatory", LENS)
    fake.push(fault, times=None)
    async with mcp_session(url(mcp_server), key) as session:
        result = await session.call_tool("ask_knowledge_base", {"question": LENS_QUESTION})
        fake.reset()
        # The session is still usable once the upstream recovers.
        listed = await session.call_tool("list_documents", {})
    assert result.is_error
    assert text_of(result).startswith(f"Error executing tool ask_knowledge_base: {code}: ")
    assert not listed.is_error


async def test_ask_past_the_chat_rate_limit_is_a_tool_error_with_retry_after(
    mcp_server: LiveServer,
) -> None:
    key = mcp_server.new_key("mcp-limit@example.com")
    async with mcp_session(url(mcp_server), key) as session:
        results = [
            await session.call_tool("search_knowledge_base", {"query": "lens"})
            for _ in range(CHAT_PER_MINUTE + 1)
        ]
    assert not any(r.is_error for r in results[:CHAT_PER_MINUTE])
    assert results[-1].is_error
    assert "too_many_requests (429)" in text_of(results[-1])
    assert "Retry after" in text_of(results[-1])


async def test_list_and_read_with_a_key_show_the_users_document(mcp_server: LiveServer) -> None:
    key = mcp_server.new_key("mcp-read@example.com")
    document_id = mcp_server.upload(key, "Orchard", ORCHARD)
    async with mcp_session(url(mcp_server), key) as session:
        listed = structured(await session.call_tool("list_documents", {}))
        first = structured(
            await session.call_tool(
                "read_document", {"document_id": document_id, "offset": 0, "max_chars": 40}
            )
        )
        rest = structured(
            await session.call_tool(
                "read_document",
                {"document_id": document_id, "offset": first["next_offset"], "max_chars": 8000},
            )
        )
        past = await session.call_tool(
            "read_document", {"document_id": document_id, "offset": len(ORCHARD) + 1}
        )
    [entry] = [d for d in listed["documents"] if d["id"] == document_id]
    assert entry["title"] == "Orchard"
    assert entry["status"] == "ready"
    assert entry["chunks"] >= 1
    assert entry["created_at"]
    assert first["text"] == ORCHARD[:40]
    assert first["next_offset"] == 40
    assert first["total_chars"] == len(ORCHARD)
    assert first["text"] + rest["text"] == ORCHARD
    assert rest["next_offset"] is None
    assert past.is_error
    assert "invalid_input (422)" in text_of(past)


async def test_tools_with_another_users_key_never_show_their_document(
    mcp_server: LiveServer,
) -> None:
    owner = mcp_server.new_key("mcp-owner@example.com")
    secret_id = mcp_server.upload(owner, "Orchard", ORCHARD)
    other = mcp_server.new_key("mcp-other@example.com")
    mcp_server.upload(other, "Observatory", LENS)
    async with mcp_session(url(mcp_server), other) as session:
        found = structured(
            await session.call_tool(
                "search_knowledge_base", {"query": "Which pear tree was planted in 1731?"}
            )
        )
        listed = structured(await session.call_tool("list_documents", {}))
        read = await session.call_tool("read_document", {"document_id": secret_id})
        missing = await session.call_tool("read_document", {"document_id": secret_id + 1000})
    assert all(hit["document_id"] != secret_id for hit in found["results"])
    assert all("Marrowfield" not in hit["text"] for hit in found["results"])
    assert secret_id not in {d["id"] for d in listed["documents"]}
    assert read.is_error
    # The same answer as for an id that does not exist: existence is not revealed.
    assert text_of(read) == text_of(missing)
    assert "not_found (404): Document not found." in text_of(read)
    # The owner still sees it.
    async with mcp_session(url(mcp_server), owner) as session:
        mine = await session.call_tool("read_document", {"document_id": secret_id})
    assert structured(mine)["text"] == ORCHARD


async def test_mcp_with_an_access_token_works_like_a_key(mcp_server: LiveServer) -> None:
    token = mcp_server.login("mcp-jwt@example.com")
    document_id = mcp_server.upload(token, "Orchard", ORCHARD)
    async with mcp_session(url(mcp_server), token) as session:
        listed = structured(await session.call_tool("list_documents", {}))
    assert [d["id"] for d in listed["documents"]] == [document_id]


async def test_post_without_credentials_is_401_with_www_authenticate(
    mcp_server: LiveServer,
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient(timeout=30) as client:
        missing = await client.post(url(mcp_server), json=initialize, headers=headers)
        bad = await client.post(
            url(mcp_server),
            json=initialize,
            headers={**headers, "Authorization": "Bearer sk-not-a-real-key"},
        )
        basic = await client.post(
            url(mcp_server), json=initialize, headers={**headers, "Authorization": "Basic eDp5"}
        )
    for response in (missing, bad, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "not_authenticated"
        assert response.headers["x-request-id"]


async def test_client_without_credentials_fails_to_initialize(mcp_server: LiveServer) -> None:
    # The SDK reports the 401 as an MCPError inside its task groups' exception groups.
    with pytest.raises(ExceptionGroup) as caught:
        async with mcp_session(url(mcp_server), None):
            pass
    assert caught.value.subgroup(MCPError) is not None


async def test_revoked_key_is_refused_on_a_new_session(mcp_server: LiveServer) -> None:
    token = mcp_server.login("mcp-revoked@example.com")
    created = mcp_server.create_key(token)
    async with mcp_session(url(mcp_server), created["key"]) as session:
        assert not (await session.call_tool("list_documents", {})).is_error
    mcp_server.revoke(token, created["id"])
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            url(mcp_server),
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={
                "Authorization": f"Bearer {created['key']}",
                "Accept": "application/json, text/event-stream",
            },
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    with pytest.raises(ExceptionGroup) as caught:
        async with mcp_session(url(mcp_server), created["key"]):
            pass
    assert caught.value.subgroup(MCPError) is not None


async def test_mcp_request_with_a_lone_surrogate_or_huge_body_is_refused_without_500(
    mcp_server: LiveServer,
) -> None:
    key = mcp_server.new_key("mcp-hostile@example.com")
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    call = (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
        '{"name": "ask_knowledge_base", "arguments": {"question": "lens \\ud800"}}}'
    )
    async with httpx.AsyncClient(timeout=30) as client:
        surrogate = await client.post(url(mcp_server), content=call, headers=headers)
        huge = await client.post(url(mcp_server), content=b"[" + b" " * 200_000, headers=headers)
    assert 400 <= surrogate.status_code < 500 or (
        surrogate.status_code == 200 and surrogate.json().get("result", {}).get("isError")
    ), surrogate.text
    assert huge.status_code == 413


def test_server_log_holds_no_question_document_text_or_credential(
    mcp_server: LiveServer,
) -> None:
    log = mcp_server.log()
    assert "mcp" in log.lower()  # the tests above ran against this server
    for secret in mcp_server.secrets:
        assert secret not in log
    for text in (LENS_QUESTION, "Lake Varnis", "Marrowfield", "When is it opened"):
        assert text not in log


async def test_session_reads_protocol_version_and_server_name(mcp_server: LiveServer) -> None:
    key = mcp_server.new_key("mcp-init@example.com")
    headers = {"Authorization": f"Bearer {key}"}
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url(mcp_server), http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
    assert initialized.server_info.name == "rag-chatbot"
    assert initialized.capabilities.tools is not None
    assert "search_knowledge_base" in (initialized.instructions or "")
