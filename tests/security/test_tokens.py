"""Tokens and keys (issue 6 §1): logout and family revocation, deactivation, purging of dead
rows, no caching of credentials, hostile claims, and the signing key itself."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from jose import jwt
from sqlalchemy import func, select, text

from app.api.state import State
from app.auth.models import RefreshToken
from app.auth.retention import purge_expired_refresh_tokens
from app.core import config
from app.core.config import Settings
from tests.conftest import TEST_SECRET, new_user, signup

PASSWORD = "correct horse 1"
CHATBOT = Path(sys.executable).with_name("chatbot")


async def _login(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, str]:
    response = await client.post("/api/login/", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    body: dict[str, str] = response.json()
    return body


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/api/token/refresh/", json={"refresh": token})


async def test_logout_revokes_the_refresh_family(client: httpx.AsyncClient) -> None:
    await signup(client)
    first = await _login(client)
    rotated = (await _refresh(client, first["refresh"])).json()
    other_login = await _login(client)

    response = await client.post("/api/logout/", json={"refresh": rotated["refresh"]})

    assert response.status_code == 204
    assert (await _refresh(client, rotated["refresh"])).status_code == 401
    # Another login (another device) is another family: it keeps working.
    assert (await _refresh(client, other_login["refresh"])).status_code == 200


async def test_logout_with_garbage_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/logout/", json={"refresh": "garbage"})
    assert response.status_code == 401


async def test_refresh_for_inactive_user_is_401(client: httpx.AsyncClient, state: State) -> None:
    await signup(client)
    tokens = await _login(client)
    async with state["sessions"].begin() as session:
        await session.execute(text("UPDATE users SET is_active = :no"), {"no": False})
    assert (await _refresh(client, tokens["refresh"])).status_code == 401


async def test_purge_deletes_only_expired_refresh_tokens(
    client: httpx.AsyncClient, state: State
) -> None:
    await signup(client)
    await _login(client)
    live = await _login(client)
    async with state["sessions"].begin() as session:
        first = (await session.execute(select(RefreshToken).limit(1))).scalar_one()
        first.expires_at = datetime.now(UTC) - timedelta(seconds=1)

    assert await purge_expired_refresh_tokens(state["sessions"]) == 1

    async with state["sessions"]() as session:
        assert (await session.execute(select(func.count(RefreshToken.jti)))).scalar_one() == 1
    assert (await _refresh(client, live["refresh"])).status_code == 200


@pytest.mark.parametrize("path", ["/api/login/", "/api/token/refresh/", "/api/token/"])
async def test_token_responses_are_not_cacheable(client: httpx.AsyncClient, path: str) -> None:
    await signup(client)
    tokens = await _login(client)
    if path == "/api/login/":
        response = await client.post(path, json={"email": "ada@example.com", "password": PASSWORD})
    elif path == "/api/token/refresh/":
        response = await _refresh(client, tokens["refresh"])
    else:
        response = await client.post(
            path, data={"username": "ada@example.com", "password": PASSWORD}
        )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


def _forge(**claims: object) -> str:
    now = int(datetime.now(UTC).timestamp())
    payload: dict[str, object] = {
        "sub": "1",
        "type": "access",
        "jti": "x",
        "iat": now,
        "exp": now + 300,
    }
    payload.update(claims)
    return str(jwt.encode(payload, TEST_SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_forge(exp=10**20), id="absurd-exp"),
        pytest.param(_forge(iat=10**20), id="absurd-iat"),
        pytest.param(_forge(iat=-(10**20)), id="negative-iat"),
        pytest.param(_forge(sub="1e3"), id="float-subject"),
        pytest.param(_forge(sub="99999999999999999999"), id="huge-subject"),
        pytest.param(_forge(sub="-1"), id="negative-subject"),
    ],
)
async def test_hostile_claims_are_401_not_500(client: httpx.AsyncClient, token: str) -> None:
    await new_user(client)
    response = await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


def test_empty_secret_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reproduced: an empty .secret_key signed tokens with the empty key."""
    path = tmp_path / ".secret_key"
    path.write_text("")
    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path))  # path is its key file
    with pytest.raises(config.ConfigurationError, match="shorter than 32"):
        _ = Settings(_env_file=None).signing_key


def test_generated_secret_file_is_private_and_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".secret_key"
    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path))  # path is its key file
    key = Settings(_env_file=None).signing_key
    assert len(key) >= 32
    assert path.read_text() == key
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [".secret_key"]  # no temporary left


@pytest.mark.parametrize("environment", ["development", "production"])
def test_short_secret_is_refused_in_every_environment(environment: str) -> None:
    with pytest.raises(ValueError, match="at least 32"):
        Settings(_env_file=None, environment=environment, secret_key="x" * 31)


def _run_chatbot(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ENVIRONMENT"}}
    return subprocess.run(  # noqa: S603 - our own installed script
        [str(CHATBOT), *args],
        cwd=tmp_path,
        env={**clean, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_without_secret_prints_one_line_and_exits(tmp_path: Path) -> None:
    """Reproduced: a 47-line traceback out of alembic."""
    result = _run_chatbot(tmp_path, "migrate", ENVIRONMENT="production")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SECRET_KEY is required in production" in lines[0]
    assert "Traceback" not in result.stderr


def test_alembic_in_production_without_secret_prints_one_line(tmp_path: Path) -> None:
    """The container runs `alembic upgrade head` itself, before uvicorn."""
    ini = Path(__file__).resolve().parents[2] / "alembic.ini"
    result = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).with_name("alembic")), "-c", str(ini), "upgrade", "head"],
        cwd=tmp_path,
        env={
            **{k: v for k, v in os.environ.items() if k != "SECRET_KEY"},
            "ENVIRONMENT": "production",
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db.sqlite",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "configuration error: SECRET_KEY is required in production" in result.stderr
    assert "Traceback" not in result.stderr
