from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from jose import jwt
from sqlalchemy import text

from app.api.state import State
from tests.conftest import TEST_SECRET, login_headers, new_user, signup


async def test_signup_valid_returns_user_without_password(client: httpx.AsyncClient) -> None:
    body = await signup(client, "Ada@Example.com")
    assert body["email"] == "ada@example.com"
    assert set(body) >= {"id", "email", "username", "created_at"}
    assert not {"password", "password_hash"} & set(body)


async def test_signup_duplicate_email_any_case_is_409(client: httpx.AsyncClient) -> None:
    await signup(client, "ada@example.com")
    response = await client.post(
        "/api/signup/",
        json={"email": "ADA@example.COM", "username": "other", "password": "another pass 2"},
    )
    assert response.status_code == 409
    assert response.json()["error"] == "email_taken"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "username": "a", "password": "long enough"},
        {"email": "a@example.com", "username": "a", "password": "short"},
        {"email": "a@example.com", "username": "a", "password": ""},
        {"email": "a@example.com", "username": "", "password": "long enough"},
        {"email": "a@example.com", "username": "a" * 151, "password": "long enough"},
        {"email": "a@example.com", "username": "a", "password": "x" * 257},
        {"email": "a@example.com", "password": "long enough"},
    ],
)
async def test_signup_invalid_input_is_422_without_echo(
    client: httpx.AsyncClient, payload: dict[str, str]
) -> None:
    response = await client.post("/api/signup/", json=payload)
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert "long enough" not in response.text  # the password is never echoed


async def test_signup_128_char_password_can_log_in(client: httpx.AsyncClient) -> None:
    password = "p" * 60 + "é" * 68  # 128 characters, 196 bytes: beyond bcrypt's 72-byte limit
    await signup(client, "long@example.com", password)
    assert await login_headers(client, "long@example.com", password)
    wrong = await client.post(
        "/api/login/", json={"email": "long@example.com", "password": password[:-1] + "x"}
    )
    assert wrong.status_code == 401


async def test_login_returns_refresh_and_access(client: httpx.AsyncClient) -> None:
    await signup(client)
    response = await client.post(
        "/api/login/", json={"email": "ADA@example.com", "password": "correct horse 1"}
    )
    assert response.status_code == 200
    assert set(response.json()) == {"refresh", "access"}


async def test_login_wrong_password_and_unknown_email_same_401(client: httpx.AsyncClient) -> None:
    await signup(client)
    wrong = await client.post(
        "/api/login/", json={"email": "ada@example.com", "password": "wrong password"}
    )
    unknown = await client.post(
        "/api/login/", json={"email": "nobody@example.com", "password": "wrong password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {
            "error": "invalid_credentials",
            "detail": "Incorrect email or password.",
        }
    )


async def test_login_unknown_email_still_verifies_a_hash(
    client: httpx.AsyncClient, state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = state["hasher"].verify

    async def spy(password: str, stored: str) -> bool:
        calls.append(stored)
        return await original(password, stored)

    monkeypatch.setattr(state["hasher"], "verify", spy)
    await client.post("/api/login/", json={"email": "nobody@example.com", "password": "whatever1"})
    assert calls == [state["hasher"].dummy_hash]


async def test_me_with_access_token_returns_user(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.get("/api/me/", headers=headers)
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"


async def test_oauth2_token_form_returns_bearer_token(client: httpx.AsyncClient) -> None:
    await signup(client)
    response = await client.post(
        "/api/token/", data={"username": "ada@example.com", "password": "correct horse 1"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    me = await client.get("/api/me/", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_refresh_rotates_and_chains(client: httpx.AsyncClient) -> None:
    await signup(client)
    tokens = (
        await client.post(
            "/api/login/", json={"email": "ada@example.com", "password": "correct horse 1"}
        )
    ).json()
    first = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert first.status_code == 200
    assert first.json()["refresh"] != tokens["refresh"]
    chained = await client.post("/api/token/refresh/", json={"refresh": first.json()["refresh"]})
    assert chained.status_code == 200


async def test_refresh_reuse_is_401_and_revokes_the_family(client: httpx.AsyncClient) -> None:
    await signup(client)
    tokens = (
        await client.post(
            "/api/login/", json={"email": "ada@example.com", "password": "correct horse 1"}
        )
    ).json()
    first = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert first.status_code == 200
    reused = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
    assert reused.status_code == 401
    # The token rotated from the stolen one dies with its family.
    chained = await client.post("/api/token/refresh/", json={"refresh": first.json()["refresh"]})
    assert chained.status_code == 401


async def test_refresh_with_access_token_is_401(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    access = headers["Authorization"].removeprefix("Bearer ")
    response = await client.post("/api/token/refresh/", json={"refresh": access})
    assert response.status_code == 401


def _forge(claims: dict[str, object], key: str = TEST_SECRET, algorithm: str = "HS256") -> str:
    now = datetime.now(UTC)
    payload = {
        "sub": "1",
        "type": "access",
        "jti": "x",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
    }
    payload.update(claims)
    return str(jwt.encode(payload, key, algorithm=algorithm))


def _alg_none_token() -> str:
    import base64
    import json

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    exp = int((datetime.now(UTC) + timedelta(minutes=5)).timestamp())
    claims = {"sub": "1", "type": "access", "jti": "x", "iat": exp - 60, "exp": exp}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_alg_none_token(), id="alg-none"),
        pytest.param(_forge({}, key="another-key-that-is-long-enough-000000000"), id="wrong-key"),
        pytest.param(_forge({"exp": 1_000_000, "iat": 999_000}), id="expired"),
        pytest.param(_forge({"type": "refresh"}), id="refresh-as-access"),
        pytest.param(_forge({}, algorithm="HS384"), id="other-algorithm"),
        pytest.param(_forge({"type": None}), id="no-type"),
        pytest.param(_forge({"sub": "not-a-number"}), id="bad-subject"),
        pytest.param("garbage", id="malformed"),
        pytest.param("", id="empty"),
    ],
)
async def test_me_with_bad_token_is_401(client: httpx.AsyncClient, token: str) -> None:
    await new_user(client)  # user 1 exists: only the token's flaw can fail it
    response = await client.get("/api/me/", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_me_with_tampered_payload_is_401(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    header, payload, signature = headers["Authorization"].removeprefix("Bearer ").split(".")
    forged_payload = _forge({"sub": "2"}).split(".")[1]
    response = await client.get(
        "/api/me/", headers={"Authorization": f"Bearer {header}.{forged_payload}.{signature}"}
    )
    assert payload != forged_payload
    assert response.status_code == 401


async def test_me_without_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/me/")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


async def test_me_for_deleted_user_is_401(client: httpx.AsyncClient, state: State) -> None:
    headers = await new_user(client)
    async with state["sessions"].begin() as session:
        await session.execute(text("DELETE FROM users"))
    response = await client.get("/api/me/", headers=headers)
    assert response.status_code == 401


async def test_me_for_inactive_user_is_401(client: httpx.AsyncClient, state: State) -> None:
    headers = await new_user(client)
    async with state["sessions"].begin() as session:
        await session.execute(text("UPDATE users SET is_active = :no"), {"no": False})
    assert (await client.get("/api/me/", headers=headers)).status_code == 401
    login = await client.post(
        "/api/login/", json={"email": "ada@example.com", "password": "correct horse 1"}
    )
    assert login.status_code == 401
