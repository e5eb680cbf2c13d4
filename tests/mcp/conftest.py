"""The MCP server as agents reach it: `chatbot serve` (tests/openai/conftest.py's live server)
answering through the Hugging Face backend against its wire fake, driven by the official `mcp`
client over Streamable HTTP; and the same behind nginx under a path prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.browser.conftest import free_port, stop, wait_until_ready
from tests.conftest import TEST_SECRET
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.server import serve
from tests.openai.conftest import LiveServer, live_database, start_server

ANSWER = "The lens is kept in a vault beneath Lake Varnis [1]."
CHAT_PER_MINUTE = 6
PREFIX = "/chatbot"
BROWSER_NGINX_CONF = Path(__file__).resolve().parents[1] / "browser" / "nginx.conf"


@asynccontextmanager
async def mcp_session(url: str, credential: str | None) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session to `url` (…/mcp), the credential as a bearer header."""
    headers = {"Authorization": f"Bearer {credential}"} if credential else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace(answer=ANSWER)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def fake(fake_llm: tuple[FakeHuggingFace, str]) -> FakeHuggingFace:
    fake_llm[0].reset()
    return fake_llm[0]


@pytest.fixture(scope="module")
def mcp_server(
    tmp_path_factory: pytest.TempPathFactory, fake_llm: tuple[FakeHuggingFace, str]
) -> Iterator[LiveServer]:
    """`chatbot serve` with the embedded embedder and store, the LLM behind the wire fake (so
    upstream failures can be scripted), and the chat rate limit on."""
    workdir = tmp_path_factory.mktemp("live-mcp")
    with live_database(workdir) as url:
        yield from start_server(
            workdir,
            url,
            llm_backend="huggingface",
            llm_base_url=f"{fake_llm[1]}/v1",
            huggingface_api_key="hf_test_token",
            hf_hub_offline="0",  # huggingface_hub refuses every call when offline
            llm_retry_deadline_seconds="0.2",
            llm_timeout_seconds="1",
            rate_limit_enabled="true",
            rate_limit_chat_per_minute=str(CHAT_PER_MINUTE),
            chat_max_message_chars="500",
        )


_skip_reasons: set[str] = set()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in sorted(_skip_reasons):
        terminalreporter.write_sep("!", f"MCP PROXY TESTS SKIPPED: {reason}", red=True, bold=True)


@dataclass(frozen=True)
class ProxiedServer:
    direct: str  # the app itself, without the prefix
    prefixed: str  # through nginx: http://127.0.0.1:<port>/chatbot


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedServer]:
    """`chatbot serve --root-path /chatbot` behind nginx with the prefix stripped, configured
    as docs/deploy.md describes (tests/browser/nginx.conf), on a fresh SQLite file."""
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    if nginx is None:
        reason = "nginx not installed (apt-get install nginx; .ci/run does it)"
        _skip_reasons.add(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("mcp-proxy")
    app_port, proxy_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(work),
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'proxied.db'}",
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "test",
        "SCHEDULER_ENABLED": "false",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
        "EMBEDDING_BACKEND": "local",
        "VECTOR_STORE": "local",
        "LLM_BACKEND": "extractive",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RATE_LIMIT_LOGIN_PER_IP_PER_MINUTE": "1000",
    }
    chatbot = Path(sys.executable).parent / "chatbot"
    app_log = work / "server.log"
    command = [str(chatbot), "serve", "--host", "127.0.0.1", "--port", str(app_port)]
    with app_log.open("wb") as out:
        app = subprocess.Popen(  # noqa: S603 - our own console script
            [*command, "--root-path", PREFIX],
            cwd=work,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{app_port}/health", app, app_log)
        config = BROWSER_NGINX_CONF.read_text()
        for key, value in {
            "@WORK@": str(work),
            "@APP_PORT@": str(app_port),
            "@PROXY_PORT@": str(proxy_port),
        }.items():
            config = config.replace(key, value)
        (work / "nginx.conf").write_text(config)
        nginx_log = work / "error.log"
        proxy = subprocess.Popen(  # noqa: S603 - our own command line
            [nginx, "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(nginx_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_until_ready(f"http://127.0.0.1:{proxy_port}{PREFIX}/health", proxy, nginx_log)
            yield ProxiedServer(
                direct=f"http://127.0.0.1:{app_port}",
                prefixed=f"http://127.0.0.1:{proxy_port}{PREFIX}",
            )
        finally:
            stop(proxy)
    finally:
        stop(app)
