"""Request ids (X-Request-ID in, validated, out) on every log line of the request, upstream
calls included; LOG_FORMAT=json gives one JSON object per line; nothing secret is logged."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from app.core.logs import build_handler
from app.core.requestid import REQUEST_ID_HEADER
from app.main import create_app
from app.testing import running_app
from tests.conftest import make_settings
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.server import serve
from tests.ops.conftest import AppClientFactory, PeerAppFactory, bearer, signup_login

HEX_ID = re.compile(r"[0-9a-f]{32}")
logger = logging.getLogger("tests.ops.route")


@contextmanager
def captured(log_format: str = "json") -> Iterator[io.StringIO]:
    """The app's own handler (`configure_logging` installs it) on the root logger, writing to
    a buffer, for the duration of the block."""
    stream = io.StringIO()
    handler = build_handler(log_format, stream=stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


@asynccontextmanager
async def app_with_log_route(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The real app plus a route that logs (twice, once with a traceback) while it serves."""
    app: FastAPI = create_app(make_settings(database_url))
    gate = asyncio.Event()

    async def log_twice(request: Request, wait: bool = False) -> dict[str, str]:
        logger.info("handling %s", request.headers.get("x-note", "-"))
        if wait:  # lets a concurrent request log in between
            await asyncio.wait_for(gate.wait(), timeout=5)
        else:
            gate.set()
        try:
            raise ZeroDivisionError("division by zero in a test")
        except ZeroDivisionError:
            logger.exception("failed %s", request.headers.get("x-note", "-"))
        return {"ok": "yes"}

    app.add_api_route("/test/log", log_twice, methods=["GET"])
    async with running_app(app) as (client, _):
        yield client


async def test_request_id_valid_header_returned_as_given(app_client: AppClientFactory) -> None:
    async with app_client() as client:
        response = await client.get("/healthz", headers={REQUEST_ID_HEADER: "trace-01.ab_CD"})

    assert response.headers[REQUEST_ID_HEADER] == "trace-01.ab_CD"


@pytest.mark.parametrize("given", ["has space", "x" * 129, "semi;colon", 'quote"d', ""])
async def test_request_id_invalid_header_replaced_by_new_id(
    app_client: AppClientFactory, given: str
) -> None:
    async with app_client() as client:
        response = await client.get("/healthz", headers={REQUEST_ID_HEADER: given})

    assert HEX_ID.fullmatch(response.headers[REQUEST_ID_HEADER])


async def test_request_id_absent_generated_per_request_on_errors_too(
    app_client: AppClientFactory,
) -> None:
    async with app_client() as client:
        ids = [
            (await client.get("/healthz")).headers[REQUEST_ID_HEADER],
            (await client.get("/api/me/")).headers[REQUEST_ID_HEADER],  # 401
            (await client.get("/no/such/route")).headers[REQUEST_ID_HEADER],  # 404
            (await client.post("/api/login/", content=b"{")).headers[REQUEST_ID_HEADER],
        ]

    assert all(HEX_ID.fullmatch(i) for i in ids)
    assert len(set(ids)) == 4


async def test_json_log_lines_carry_request_id_and_traceback(database_url: str) -> None:
    with captured("json") as stream:
        async with app_with_log_route(database_url) as client:
            response = await client.get(
                "/test/log", headers={REQUEST_ID_HEADER: "req-1", "x-note": "one"}
            )
    assert response.status_code == 200

    mine = [e for e in json_lines(stream) if e["logger"] == "tests.ops.route"]
    assert [e["message"] for e in mine] == ["handling one", "failed one"]
    assert {e["request_id"] for e in mine} == {"req-1"}
    assert [e["level"] for e in mine] == ["INFO", "ERROR"]
    assert "exc_info" not in mine[0]
    assert "ZeroDivisionError: division by zero in a test" in mine[1]["exc_info"]
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", e["time"]) for e in mine
    )
    assert set(mine[1]) == {"time", "level", "logger", "message", "request_id", "exc_info"}


async def test_concurrent_requests_each_log_their_own_id(database_url: str) -> None:
    with captured("json") as stream:
        async with app_with_log_route(database_url) as client:
            slow = client.get(
                "/test/log",
                params={"wait": "true"},
                headers={REQUEST_ID_HEADER: "slow-request", "x-note": "slow-request"},
            )
            fast = client.get(
                "/test/log", headers={REQUEST_ID_HEADER: "fast-request", "x-note": "fast-request"}
            )
            responses = await asyncio.gather(slow, fast)
    assert [r.status_code for r in responses] == [200, 200]

    mine = [e for e in json_lines(stream) if e["logger"] == "tests.ops.route"]
    assert len(mine) == 4
    assert mine[0]["message"] == "handling slow-request"  # the slow one waited: interleaved
    for entry in mine:
        assert entry["message"].endswith(entry["request_id"])


async def test_plain_log_lines_carry_request_id(database_url: str) -> None:
    with captured("plain") as stream:
        async with app_with_log_route(database_url) as client:
            await client.get("/test/log", headers={REQUEST_ID_HEADER: "plain-7", "x-note": "p"})

    lines = [line for line in stream.getvalue().splitlines() if "tests.ops.route" in line]
    assert lines[0] == "INFO tests.ops.route [plain-7]: handling p"
    assert lines[1].startswith("ERROR tests.ops.route [plain-7]: failed p")


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[str]:
    fake = FakeHuggingFace(answer="The shed is green [1].")
    with serve(fake.app) as url:
        yield url


async def test_upstream_call_log_lines_carry_request_id_and_no_secrets(
    app_client: AppClientFactory, fake_llm: str
) -> None:
    message = "Which colour might the plum-free shed be painted?"
    document = "The shed by the plum tree is painted green, said the gardener."
    with captured("json") as stream:
        async with app_client(llm_backend="huggingface", llm_base_url=f"{fake_llm}/v1") as client:
            tokens = await signup_login(client)
            headers = bearer(tokens["access"])
            created = await client.post(
                "/api/documents/", json={"title": "Shed", "content": document}, headers=headers
            )
            assert created.status_code == 201
            chat = await client.post(
                "/api/chat/",
                json={"message": message},
                headers={**headers, REQUEST_ID_HEADER: "chat-42"},
            )
    assert chat.status_code == 200, chat.text

    entries = json_lines(stream)
    upstream = [e for e in entries if fake_llm in e["message"]]
    assert upstream, [e["message"] for e in entries]
    assert {e["request_id"] for e in upstream} == {"chat-42"}
    logged = stream.getvalue()
    for secret in (message, document, tokens["access"], tokens["refresh"], "correct horse 1"):
        assert secret not in logged


SNIPPET = """
import logging
from app.core.config import Settings
from app.main import create_app
create_app(Settings(_env_file=None))
logging.getLogger("uvicorn.error").info("Started server process")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("app.example").exception("it failed")
"""


def test_log_format_json_setting_one_object_per_line_uvicorn_included(tmp_path: Path) -> None:
    env = {**os.environ, "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "ENVIRONMENT": "test"}
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", SNIPPET],
        env=env,
        cwd=tmp_path,  # no .env here; the dev key file goes to tmp_path
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    entries = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    by_logger = {e["logger"]: e for e in entries}
    assert by_logger["uvicorn.error"]["message"] == "Started server process"
    assert by_logger["app.example"]["level"] == "ERROR"
    assert "ZeroDivisionError" in by_logger["app.example"]["exc_info"]
    assert all(e["request_id"] is None for e in entries)  # outside any request


async def test_background_ingestion_upstream_lines_carry_the_upload_request_id(
    peer_app: PeerAppFactory, fake_llm: str
) -> None:
    with captured("json") as stream:
        async with (
            peer_app(
                embedding_backend="huggingface",
                embedding_url=f"{fake_llm}/embed",
                ingest_inline_max_chunks=0,  # every upload is indexed in the background
            ) as running,
            running.client() as client,
        ):
            headers = bearer((await signup_login(client))["access"])
            created = await client.post(
                "/api/documents/",
                json={"title": "Shed", "content": "The shed is green. The key is by the door."},
                headers={**headers, REQUEST_ID_HEADER: "upload-9"},
            )
            assert created.json()["status"] == "processing"
            await running.state["documents"].wait_idle()
            document = await client.get(f"/api/documents/{created.json()['id']}/", headers=headers)
    assert document.json()["status"] == "ready"

    embed_lines = [e for e in json_lines(stream) if f"{fake_llm}/embed" in e["message"]]
    assert embed_lines  # the background task's calls to the embedder
    assert {e["request_id"] for e in embed_lines} == {"upload-9"}
