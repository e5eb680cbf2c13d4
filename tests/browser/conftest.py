"""The app as deployed: the installed `chatbot serve` in a subprocess on a fresh SQLite file,
Debian's nginx in front of it under `/chatbot/`, headless Chromium driven by selenium, and
static pages of our own on other loopback origins. Everything listens on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.conftest import TEST_SECRET

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

HERE = Path(__file__).resolve().parent
PREFIX = "/chatbot"
STARTUP_TIMEOUT = 120.0
INHERITED_ENV = frozenset({"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"})
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1800",
)


_skip_reasons: set[str] = set()


def skip_loudly(reason: str) -> None:
    _skip_reasons.add(reason)  # repeated at the end of the run, see below
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    # A banner after the results, so a CI log shows it without -rs.
    for reason in sorted(_skip_reasons):
        terminalreporter.write_sep("!", f"BROWSER TESTS SKIPPED: {reason}", red=True, bold=True)


def require(*binaries: str) -> dict[str, str]:
    found = {name: shutil.which(name) for name in binaries}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        skip_loudly(
            f"{', '.join(missing)} not installed "
            "(apt-get install chromium chromium-driver nginx; .ci/run does it)"
        )
    return {name: path for name, path in found.items() if path is not None}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_until_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{url} not ready after {STARTUP_TIMEOUT:.0f} s:\n{log.read_text()[-4000:]}")


@dataclass(frozen=True)
class Site:
    origin: str


@dataclass(frozen=True)
class FrontendSites:
    """The same static page on two origins: one in CORS_ORIGINS, one not."""

    allowed: Site
    blocked: Site


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def frontend_sites() -> Iterator[FrontendSites]:
    handler = functools.partial(_QuietHandler, directory=str(HERE / "frontend"))
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    allowed, blocked = (Site(f"http://127.0.0.1:{s.server_address[1]}") for s in servers)
    try:
        yield FrontendSites(allowed=allowed, blocked=blocked)
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@dataclass(frozen=True)
class ApiServer:
    url: str  # direct, without the prefix (uvicorn accepts both)
    log: Path


@pytest.fixture(scope="session")
def api_server(
    tmp_path_factory: pytest.TempPathFactory, frontend_sites: FrontendSites
) -> Iterator[ApiServer]:
    """`chatbot serve --root-path /chatbot` on a fresh SQLite file, as an operator runs it."""
    work = tmp_path_factory.mktemp("api")
    chatbot = Path(sys.executable).parent / "chatbot"
    assert chatbot.exists(), f"{chatbot} missing: run `make setup`"
    port = free_port()
    env = {
        # Nothing else from the environment: a stray CORS_* or backend setting would change
        # what is being tested.
        **{k: v for k, v in os.environ.items() if k in INHERITED_ENV},
        "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'browser.db'}",
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
        "SCHEDULER_ENABLED": "false",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
        "EMBEDDING_BACKEND": "local",
        "VECTOR_STORE": "local",
        "LLM_BACKEND": "extractive",
        "HF_HUB_OFFLINE": "1",
        "PYTHONUNBUFFERED": "1",  # the access log is read while the server runs
        "CORS_ORIGINS": frontend_sites.allowed.origin,
        "ROOT_PATH": "",  # the flag below must be what sets the prefix
    }
    log = work / "server.log"
    with log.open("wb") as out:
        command = [str(chatbot), "serve", "--host", "127.0.0.1", "--port", str(port)]
        process = subprocess.Popen(  # noqa: S603 - our own command line
            [*command, "--root-path", PREFIX],
            cwd=work,  # no stray .env; nothing written to the checkout
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/health", process, log)
        yield ApiServer(url=f"http://127.0.0.1:{port}", log=log)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def proxy(tmp_path_factory: pytest.TempPathFactory, api_server: ApiServer) -> Iterator[str]:
    """nginx proxying /chatbot/ to the app, prefix stripped; yields the prefixed base URL."""
    nginx = require("nginx")["nginx"]
    work = tmp_path_factory.mktemp("nginx")
    port = free_port()
    app_port = api_server.url.rsplit(":", 1)[1]
    config = (HERE / "nginx.conf").read_text()
    for key, value in {
        "@WORK@": str(work),
        "@APP_PORT@": app_port,
        "@PROXY_PORT@": str(port),
    }.items():
        config = config.replace(key, value)
    (work / "nginx.conf").write_text(config)
    log = work / "error.log"
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [nginx, "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}{PREFIX}/health", process, log)
        yield f"http://127.0.0.1:{port}{PREFIX}"
    finally:
        stop(process)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile."""
    paths = require("chromium", "chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = paths["chromium"]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    driver = webdriver.Chrome(options=options, service=Service(paths["chromedriver"]))
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
