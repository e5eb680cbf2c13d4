from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from app.api.state import State
from app.apikeys.hashing import derive_pepper, hash_key
from app.apikeys.models import ApiKey
from tests.conftest import AppFactory, new_user


async def create_key(
    client: httpx.AsyncClient, headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post("/api/keys/", json={"name": "laptop", **body}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _rows(state: State) -> list[ApiKey]:
    async with state["sessions"]() as session:
        return list((await session.execute(select(ApiKey).order_by(ApiKey.id))).scalars())


async def _sql(state: State, statement: str, **params: Any) -> None:
    async with state["sessions"].begin() as session:
        await session.execute(text(statement), params)


async def test_create_key_returns_it_once_and_stores_only_its_hmac(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    created = await create_key(client, headers)
    key = created["key"]
    assert key.startswith("sk-")
    assert len(key) >= len("sk-") + 43  # 32 random bytes, urlsafe base64
    assert created["prefix"] == key[: len(created["prefix"])]
    assert 8 <= len(created["prefix"]) < 16
    [row] = await _rows(state)
    assert row.key_hash == hash_key(key, derive_pepper(state["settings"]))
    assert key not in {row.name, row.prefix, row.key_hash}
    listed = (await client.get("/api/keys/", headers=headers)).json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0]
    assert {"name", "prefix", "created_at", "last_used_at", "expires_at"} <= set(listed[0])


async def test_api_key_as_bearer_authenticates_seed_endpoints(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    me = await client.get("/api/me/", headers=bearer(key))
    assert me.status_code == 200
    assert me.json()["email"] == "ada@example.com"
    documents = await client.get("/api/documents/", headers=bearer(key))
    assert documents.status_code == 200


async def test_revoked_key_is_401_and_leaves_the_listing(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    created = await create_key(client, headers)
    revoked = await client.delete(f"/api/keys/{created['id']}/", headers=headers)
    assert revoked.status_code == 204
    response = await client.get("/api/me/", headers=bearer(created["key"]))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get("/api/keys/", headers=headers)).json() == []
    again = await client.delete(f"/api/keys/{created['id']}/", headers=headers)
    assert again.status_code == 404


async def test_expired_key_is_401(client: httpx.AsyncClient, state: State) -> None:
    headers = await new_user(client)
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = await create_key(client, headers, expires_at=soon.isoformat())
    assert (await client.get("/api/me/", headers=bearer(created["key"]))).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    await _sql(state, "UPDATE api_keys SET expires_at = :t", t=past)
    response = await client.get("/api/me/", headers=bearer(created["key"]))
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@pytest.mark.parametrize(
    "token",
    ["sk-" + "A" * 43, "sk-", "sk-" + "x" * 5000, "sk-\u00e9\u00e9"],
    ids=["unknown", "bare-prefix", "oversized", "non-ascii"],
)
async def test_unknown_key_is_401(client: httpx.AsyncClient, token: str) -> None:
    await new_user(client)
    # Raw bytes: httpx would refuse to encode a non-ASCII str header.
    response = await client.get("/api/me/", headers={b"Authorization": f"Bearer {token}".encode()})
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


async def test_key_of_deactivated_user_stops_working_at_once(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    await _sql(state, "UPDATE users SET is_active = :no", no=False)
    assert (await client.get("/api/me/", headers=bearer(key))).status_code == 401


async def test_deleting_user_deletes_keys(client: httpx.AsyncClient, state: State) -> None:
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    await _sql(state, "DELETE FROM users")
    assert await _rows(state) == []
    assert (await client.get("/api/me/", headers=bearer(key))).status_code == 401


async def test_another_users_key_is_404_and_unlisted(client: httpx.AsyncClient) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    created = await create_key(client, ada)
    assert (await client.get("/api/keys/", headers=bob)).json() == []
    response = await client.delete(f"/api/keys/{created['id']}/", headers=bob)
    assert response.status_code == 404
    assert response.json()["error"] == "api_key_not_found"
    assert (await client.get("/api/me/", headers=bearer(created["key"]))).status_code == 200


async def test_each_key_resolves_to_its_own_user(client: httpx.AsyncClient) -> None:
    ada_key = (await create_key(client, await new_user(client, "ada@example.com")))["key"]
    bob_key = (await create_key(client, await new_user(client, "bob@example.com")))["key"]
    ada = (await client.get("/api/me/", headers=bearer(ada_key))).json()
    bob = (await client.get("/api/me/", headers=bearer(bob_key))).json()
    assert (ada["email"], bob["email"]) == ("ada@example.com", "bob@example.com")


async def test_create_key_with_api_key_is_403(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    response = await client.post("/api/keys/", json={"name": "x"}, headers=bearer(key))
    assert response.status_code == 403
    # Listing and revoking with a key are fine: they cannot extend a stolen key's reach.
    assert (await client.get("/api/keys/", headers=bearer(key))).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "   "},
        {"name": "x" * 101},
        {"name": "a\x00b"},
        {},
        {"name": "x", "expires_at": "2030-01-01T00:00:00"},  # naive: which zone?
        {"name": "x", "expires_at": "not a date"},
    ],
    ids=["empty", "blank", "long", "nul", "missing", "naive-expiry", "bad-expiry"],
)
async def test_create_key_invalid_body_is_422(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    headers = await new_user(client)
    response = await client.post("/api/keys/", json=body, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


async def test_create_key_expiring_in_the_past_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    response = await client.post(
        "/api/keys/", json={"name": "x", "expires_at": past}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_input"


async def test_create_key_beyond_limit_is_409(app_factory: AppFactory) -> None:
    async with app_factory(api_key_max_per_user=2) as (client, _):
        headers = await new_user(client)
        first = await create_key(client, headers)
        await create_key(client, headers)
        response = await client.post("/api/keys/", json={"name": "third"}, headers=headers)
        assert response.status_code == 409
        assert response.json()["error"] == "too_many_api_keys"
        await client.delete(f"/api/keys/{first['id']}/", headers=headers)
        await create_key(client, headers)


async def test_keys_require_authentication(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/keys/")).status_code == 401
    assert (await client.post("/api/keys/", json={"name": "x"})).status_code == 401


async def test_last_used_is_written_at_most_once_per_interval(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    [fresh] = await _rows(state)
    assert fresh.last_used_at is None
    await client.get("/api/me/", headers=bearer(key))
    [used] = await _rows(state)
    assert used.last_used_at is not None
    await client.get("/api/me/", headers=bearer(key))
    [again] = await _rows(state)
    assert again.last_used_at == used.last_used_at  # within API_KEY_LAST_USED_INTERVAL_SECONDS
    listed = (await client.get("/api/keys/", headers=headers)).json()
    assert listed[0]["last_used_at"] is not None


async def test_last_used_with_zero_interval_is_written_every_time(
    app_factory: AppFactory,
) -> None:
    async with app_factory(api_key_last_used_interval_seconds=0) as (client, state):
        headers = await new_user(client)
        key = (await create_key(client, headers))["key"]
        await client.get("/api/me/", headers=bearer(key))
        [first] = await _rows(state)
        await client.get("/api/me/", headers=bearer(key))
        [second] = await _rows(state)
        assert first.last_used_at is not None
        assert second.last_used_at is not None
        assert second.last_used_at >= first.last_used_at


async def test_keys_and_hashes_never_reach_the_logs(
    client: httpx.AsyncClient, state: State, caplog: pytest.LogCaptureFixture
) -> None:
    # Our loggers at DEBUG; the drivers at INFO (aiosqlite's DEBUG prints every parameter).
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="app")
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    await client.get("/api/me/", headers=bearer(key))
    await client.get("/api/me/", headers=bearer(key + "x"))
    [row] = await _rows(state)
    assert key not in caplog.text
    assert key[len(row.prefix) :] not in caplog.text
    assert row.key_hash not in caplog.text


async def test_deleting_account_removes_keys_and_v1_history(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    key = (await create_key(client, headers))["key"]
    turn = await client.post(
        "/v1/chat/completions",
        json={"model": "rag", "messages": [{"role": "user", "content": "Hello?"}]},
        headers=bearer(key),
    )
    assert turn.status_code == 200, turn.text
    deleted = await client.request(
        "DELETE", "/api/me/", json={"password": "correct horse 1"}, headers=headers
    )
    assert deleted.status_code == 204
    assert await _rows(state) == []
    async with state["sessions"]() as session:
        for table in ("chat_messages", "conversations"):
            count = (await session.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            assert count == 0, table
    assert (await client.get("/v1/models", headers=bearer(key))).status_code == 401


async def test_create_key_prunes_revoked_and_expired_keys(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    revoked = await create_key(client, headers, name="revoked")
    expired = await create_key(client, headers, name="expired")
    kept = await create_key(client, headers, name="kept")
    await client.delete(f"/api/keys/{revoked['id']}/", headers=headers)
    await _sql(
        state,
        "UPDATE api_keys SET expires_at = :past WHERE id = :id",
        past=datetime.now(UTC) - timedelta(seconds=1),
        id=expired["id"],
    )
    assert len(await _rows(state)) == 3
    new = await create_key(client, headers, name="new")
    assert [row.id for row in await _rows(state)] == [kept["id"], new["id"]]
