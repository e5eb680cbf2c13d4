"""The MCP server as agents reach it: `chatbot serve` (tests/openai/conftest.py's live server)
answering through the Hugging Face backend against its wire fake, driven by the official `mcp`
client over Streamable HTTP; and the same behind nginx under a path prefix."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
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
ROOT = Path(__file__).resolve().parents[2]
BROWSER_NGINX_CONF = ROOT / "tests" / "browser" / "nginx.conf"


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


def _nginx() -> str:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    if nginx is None:
        reason = "nginx not installed (apt-get install nginx; .ci/run does it)"
        _skip_reasons.add(reason)
        pytest.skip(reason)
    return nginx


def _serve_env(work: Path) -> dict[str, str]:
    return {
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


@contextmanager
def _serving(work: Path, name: str, *args: str) -> Iterator[tuple[str, Path]]:
    """`chatbot serve` on a free port with `_serve_env`; yields its URL and log file."""
    port = free_port()
    log = work / f"{name}.log"
    command = [str(Path(sys.executable).parent / "chatbot"), "serve", "--host", "127.0.0.1"]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own console script
            [*command, "--port", str(port), *args],
            cwd=work,
            env=_serve_env(work),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", process, log)
        yield f"http://127.0.0.1:{port}", log
    finally:
        stop(process)


@contextmanager
def _nginx_running(
    work: Path, config: str, ready_path: str, *, globals_: str | None = None
) -> Iterator[str]:
    """nginx in the foreground with `config` (@PROXY_PORT@ filled in) and `globals_` (`-g`,
    for a config written for a container); yields its base URL."""
    nginx = _nginx()
    port = free_port()
    (work / "logs").mkdir(exist_ok=True)
    (work / "nginx.conf").write_text(config.replace("@PROXY_PORT@", str(port)))
    log = work / "error.log"
    command = [nginx, "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(log)]
    proxy = subprocess.Popen(  # noqa: S603 - our own command line
        [*command, *(["-g", globals_] if globals_ else [])],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}{ready_path}", proxy, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proxy)


@pytest.fixture(scope="module")
def proxied_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedServer]:
    """`chatbot serve --root-path /chatbot` behind nginx with the prefix stripped, configured
    as docs/deploy.md describes (tests/browser/nginx.conf), on a fresh SQLite file."""
    _nginx()
    work = tmp_path_factory.mktemp("mcp-proxy")
    with _serving(work, "server", "--root-path", PREFIX) as (direct, _):
        config = BROWSER_NGINX_CONF.read_text().replace("@WORK@", str(work))
        config = config.replace("@APP_PORT@", direct.rsplit(":", 1)[1])
        with _nginx_running(work, config, f"{PREFIX}/health") as proxy:
            yield ProxiedServer(direct=direct, prefixed=f"{proxy}{PREFIX}")


@dataclass(frozen=True)
class Replicas:
    proxy: str  # deploy/nginx.conf in front of both
    logs: tuple[Path, Path]
    key: str  # an API key of a user whose document both replicas have indexed in memory


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Two `chatbot serve` replicas on one database behind deploy/nginx.conf (the compose
    file's, app1 and app2 on loopback), round-robin. The user, key and document are made
    before the second replica starts, which then loads the stored vectors."""
    _nginx()
    work = tmp_path_factory.mktemp("mcp-replicas")
    with _serving(work, "app1") as (first, first_log):
        key = upload_with_new_key(first, "mcp-replicas@example.com")
        with _serving(work, "app2", "--no-migrate") as (second, second_log):
            config = (ROOT / "deploy" / "nginx.conf").read_text()
            config = config.replace("server app1:8000;", f"server {first[7:]};")
            config = config.replace("server app2:8000;", f"server {second[7:]};")
            config = config.replace("listen 8080;", "listen 127.0.0.1:@PROXY_PORT@;")
            # Not daemonized, so stopping the process stops nginx.
            globals_ = f"daemon off; pid {work}/nginx.pid;"
            with _nginx_running(work, config, "/health", globals_=globals_) as proxy:
                yield Replicas(proxy=proxy, logs=(first_log, second_log), key=key)


REPLICA_FACT = "The Quillon observatory keeps its telescope lens in a vault beneath Lake Varnis."


def upload_with_new_key(base: str, email: str) -> str:
    """Sign up, log in, create an API key and upload `REPLICA_FACT` with it; the key."""
    with httpx.Client(base_url=base, timeout=120) as client:
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
            json={"title": "Observatory", "content": REPLICA_FACT},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert upload.status_code == 201, upload.text
    return key
