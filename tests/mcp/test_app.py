"""/mcp in process (the app under its lifespan, httpx over ASGI): the SDK runs tools in its own
task group, so the request id is carried to their log lines explicitly; MCP_ENABLED=false
removes the route; the app can be started twice (a fresh SDK session manager per lifespan)."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.requestid import REQUEST_ID_HEADER
from app.main import create_app
from app.testing import running_app
from tests.conftest import AppFactory, login_headers, make_settings, signup
from tests.ops.test_logs import captured, json_lines

ACCEPT = {"Accept": "application/json, text/event-stream"}


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    # Stateless: a tools/call needs no initialize before it.
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments},
    }


async def _headers(
    client: httpx.AsyncClient, email: str = "mcp-inproc@example.com"
) -> dict[str, str]:
    await signup(client, email)
    return {**ACCEPT, **await login_headers(client, email)}


async def test_tool_log_lines_carry_the_request_id(app_factory: AppFactory) -> None:
    with captured("json") as stream:
        async with app_factory() as (client, _):
            headers = {**await _headers(client), REQUEST_ID_HEADER: "mcp-req-7"}
            response = await client.post(
                "/mcp", json=_call("read_document", {"document_id": 999}), headers=headers
            )
    assert response.status_code == 200
    assert response.json()["result"]["isError"] is True
    assert response.headers[REQUEST_ID_HEADER] == "mcp-req-7"
    mine = [e for e in json_lines(stream) if e["logger"] == "app.mcp.server"]
    assert [e["message"] for e in mine] == ["mcp read_document by user 1: not_found"]
    assert mine[0]["request_id"] == "mcp-req-7"


async def test_mcp_disabled_is_404(app_factory: AppFactory) -> None:
    async with app_factory(mcp_enabled=False) as (client, _):
        response = await client.post("/mcp", json=_call("list_documents", {}), headers=ACCEPT)
    assert response.status_code == 404


async def test_app_started_twice_serves_mcp_each_time(database_url: str) -> None:
    app = create_app(make_settings(database_url))
    statuses: list[tuple[int, bool]] = []
    for _ in range(2):
        async with running_app(app) as (client, _):
            headers = await _headers(client, f"mcp-restart-{len(statuses)}@example.com")
            response = await client.post("/mcp", json=_call("list_documents", {}), headers=headers)
            statuses.append((response.status_code, response.json()["result"]["isError"]))
    assert statuses == [(200, False), (200, False)]


async def test_lifespan_left_by_another_task_stops_mcp_cleanly(client: httpx.AsyncClient) -> None:
    # The `running` fixture enters the lifespan in its set-up task and leaves it in its
    # tear-down task; the SDK's task group once failed that tear-down (and every test using
    # the fixture with it) with "Attempted to exit cancel scope in a different task".
    headers = await _headers(client, "mcp-fixture@example.com")
    response = await client.post("/mcp", json=_call("list_documents", {}), headers=headers)
    assert response.status_code == 200
    assert response.json()["result"]["isError"] is False
