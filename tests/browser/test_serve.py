"""`chatbot serve` as operators run it: no `server: uvicorn` header, the edge headers on the
wire, and `--root-path` defaulting to ROOT_PATH."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.middleware import SECURITY_HEADERS
from app.cli import main
from tests.browser.conftest import PREFIX, ApiServer
from tests.conftest import TEST_SECRET


def test_serve_subprocess_response_has_no_server_header(api_server: ApiServer) -> None:
    response = httpx.get(f"{api_server.url}/health", timeout=10)
    assert response.status_code == 200
    assert "server" not in response.headers
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value


def test_serve_subprocess_root_path_flag_reaches_schema(api_server: ApiServer) -> None:
    # Requests arrive without the prefix (nginx strips it); the schema still names it.
    spec = httpx.get(f"{api_server.url}/openapi.json", timeout=10).json()
    assert spec["servers"][0] == {"url": PREFIX}


@pytest.fixture
def uvicorn_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what `chatbot serve --no-migrate` hands to uvicorn instead of serving."""
    import uvicorn

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}")
    monkeypatch.setenv("ROOT_PATH", "/from-setting")  # also restores what serve writes there
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append(kwargs))
    return calls


def test_serve_without_flag_uses_root_path_setting(uvicorn_calls: list[dict[str, Any]]) -> None:
    assert main(["serve", "--no-migrate"]) == 0
    assert uvicorn_calls[0]["root_path"] == "/from-setting"
    assert uvicorn_calls[0]["server_header"] is False


def test_serve_root_path_flag_overrides_setting(
    uvicorn_calls: list[dict[str, Any]],
) -> None:
    assert main(["serve", "--no-migrate", "--root-path", "/chatbot/"]) == 0
    assert uvicorn_calls[0]["root_path"] == "/chatbot"
    # Worker processes build the app from the environment.
    assert os.environ["ROOT_PATH"] == "/chatbot"


def test_serve_root_path_without_slash_exits_2(
    uvicorn_calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--no-migrate", "--root-path", "chatbot"]) == 2
    assert uvicorn_calls == []
    assert "--root-path must start with '/'" in capsys.readouterr().err
