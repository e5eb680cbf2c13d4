"""A browser front end on another origin: every call a single-page app makes (JSON, bearer
token, multipart upload, a streamed answer read with a ReadableStream, history, an error) works
from an origin in CORS_ORIGINS, through nginx under /chatbot/, and is blocked from any other."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import httpx

from tests.browser.conftest import ApiServer, FrontendSites

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

PASSWORD = "front end password 1"
ACCESS_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})')
RUN_SCENARIO = """
const done = arguments[arguments.length - 1];
runScenario(arguments[0], arguments[1], arguments[2]).then(done, (e) => done({fatal: String(e)}));
"""


def run_scenario(browser: WebDriver, page: str, api: str, email: str) -> dict[str, Any]:
    browser.get(f"{page}/index.html")
    steps: dict[str, Any] = browser.execute_async_script(RUN_SCENARIO, api, email, PASSWORD)
    assert "fatal" not in steps, steps
    return steps


def access_log(server: ApiServer, since: int = 0) -> list[tuple[str, str, int]]:
    text = server.log.read_text()[since:]
    return [(m["method"], m["path"], int(m["status"])) for m in ACCESS_LINE.finditer(text)]


def test_frontend_allowed_origin_every_step_succeeds(
    proxy: str, api_server: ApiServer, frontend_sites: FrontendSites, browser: WebDriver
) -> None:
    offset = len(api_server.log.read_text())

    steps = run_scenario(browser, frontend_sites.allowed.origin, proxy, "front@example.com")

    assert steps["signup"]["status"] == 201, steps["signup"]
    assert steps["login"]["status"] == 200, steps["login"]
    assert steps["upload"]["status"] == 201, steps["upload"]
    assert steps["upload"]["body"]["status"] == "ready"
    chat = steps["chat"]
    assert chat["status"] == 200, chat
    assert "25 days" in chat["body"]["response"]
    assert chat["body"]["sources"][0]["title"] == "Handbook"
    stream = steps["stream"]
    assert stream["status"] == 200, stream
    names = [e["event"] for e in stream["events"]]
    assert names[0] == "sources", names
    assert names[-1] == "done", names
    assert "delta" in names, names
    streamed = "".join(e["data"]["text"] for e in stream["events"] if e["event"] == "delta")
    assert streamed == stream["events"][-1]["data"]["response"]
    assert "25 days" in streamed
    history = steps["history"]
    assert history["status"] == 200, history
    questions = [m["content"] for m in history["body"] if m["role"] == "user"]
    assert questions.count("How many days of paid annual leave do employees receive?") == 2
    assert sum(m["role"] == "bot" for m in history["body"]) == 2
    # The page can read an error's status, body and headers, not just "failed to fetch".
    unauthorized = steps["unauthorized"]
    assert unauthorized["status"] == 401
    assert unauthorized["body"]["error"] == "not_authenticated"
    assert unauthorized["wwwAuthenticate"] == "Bearer"
    # The browser asked first (preflight) and the server said yes.
    preflights = [line for line in access_log(api_server, offset) if line[0] == "OPTIONS"]
    assert preflights
    assert all(status == 200 for _, _, status in preflights), preflights


def test_frontend_unlisted_origin_is_blocked_and_nothing_leaves(
    proxy: str, api_server: ApiServer, frontend_sites: FrontendSites, browser: WebDriver
) -> None:
    offset = len(api_server.log.read_text())
    email = "blocked@example.com"

    steps = run_scenario(browser, frontend_sites.blocked.origin, proxy, email)

    for name, result in steps.items():
        assert "status" not in result, (name, result)
        assert result["error"].startswith("TypeError"), (name, result)
    # Every call stopped at its preflight, refused: no request body reached a route.
    seen = access_log(api_server, offset)
    assert len(seen) == len(steps), seen
    assert {(method, status) for method, _, status in seen} == {("OPTIONS", 400)}, seen
    login = httpx.post(f"{proxy}/api/login/", json={"email": email, "password": PASSWORD})
    assert login.status_code == 401
