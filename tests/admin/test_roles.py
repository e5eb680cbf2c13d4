"""Who may call the admin API: every route, every kind of caller (table-driven)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import admin_headers, create_key
from tests.conftest import new_user
from tests.usage.conftest import RemoteFactory

# (method, path, body); {victim} is a plain user's id.
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/admin/users/", None),
    ("GET", "/api/admin/users/?q=victim", None),
    ("GET", "/api/admin/users/{victim}/", None),
    ("PATCH", "/api/admin/users/{victim}/", {"daily_token_budget": 5}),
    ("DELETE", "/api/admin/users/{victim}/", None),
    ("GET", "/api/admin/usage/", None),
    ("GET", "/api/admin/feedback/", None),
    ("GET", "/api/admin/feedback/?format=jsonl", None),
    ("GET", "/api/admin/audit/", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_route_callers_anonymous_401_user_and_unscoped_keys_403_admin_2xx(
    remote: RemoteFactory, method: str, path: str, body: dict[str, Any] | None
) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        user = await new_user(client, "user@example.com")
        victim = (
            await client.get("/api/me/", headers=await new_user(client, "victim@example.com"))
        ).json()
        url = path.format(victim=victim["id"])
        callers: list[tuple[str, dict[str, str], int]] = [
            ("anonymous", {}, 401),
            ("user", user, 403),
            ("user's key", await create_key(client, user), 403),
            ("admin's key without the admin scope", await create_key(client, admin), 403),
            ("admin's admin-scoped key", await create_key(client, admin, scopes=["admin"]), 200),
            ("admin", admin, 200),
        ]
        for caller, headers, expected in callers:
            if method == "DELETE" and expected == 200 and caller != "admin":
                continue  # the victim can be deleted once: by the last caller
            response = await client.request(method, url, json=body, headers=headers)
            if expected == 200:
                assert response.status_code in (200, 204), (caller, response.text)
            else:
                assert response.status_code == expected, (caller, response.text)
                assert response.json()["error"] in ("not_authenticated", "permission_denied")


async def test_admin_scope_key_requested_by_non_admin_is_403(remote: RemoteFactory) -> None:
    async with remote() as (client, _):
        user = await new_user(client)

        response = await client.post(
            "/api/keys/", json={"name": "k", "scopes": ["admin"]}, headers=user
        )

        assert response.status_code == 403
        assert (await client.get("/api/keys/", headers=user)).json() == []


async def test_admin_scope_key_requested_with_an_api_key_is_403(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        scoped = await create_key(client, admin, scopes=["admin"])

        response = await client.post(
            "/api/keys/", json={"name": "k2", "scopes": ["admin"]}, headers=scoped
        )

        assert response.status_code == 403


async def test_unknown_scope_is_422(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")

        response = await client.post(
            "/api/keys/", json={"name": "k", "scopes": ["root"]}, headers=admin
        )

        assert response.status_code == 422


async def test_admin_scoped_key_of_a_demoted_admin_is_403(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        first = await admin_headers(client, state, "first@example.com")
        second = await admin_headers(client, state, "second@example.com")
        scoped = await create_key(client, first, scopes=["admin"])
        assert (await client.get("/api/admin/users/", headers=scoped)).status_code == 200
        first_id = (await client.get("/api/me/", headers=first)).json()["id"]

        demoted = await client.patch(
            f"/api/admin/users/{first_id}/", json={"is_admin": False}, headers=second
        )

        assert demoted.status_code == 200, demoted.text
        assert (await client.get("/api/admin/users/", headers=scoped)).status_code == 403
        listed = (await client.get("/api/keys/", headers=first)).json()
        assert listed[0]["scopes"] == ["admin"]
