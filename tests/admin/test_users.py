"""User administration: search, detail, changes and their effect at once, the last
administrator, deletion with everything the user owns, and the audit log."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from app.admin.models import AuditEntry
from app.admin.service import purge_audit
from app.api.state import State
from app.auth.models import User
from app.chat.models import ChatMessage
from app.core.db import Base, utcnow
from app.documents.models import Document
from app.feedback.models import MessageFeedback
from app.rag.backends.local import VectorEntry
from app.usage.models import TokenUsage
from tests.admin.conftest import admin_headers, create_key
from tests.conftest import new_user
from tests.usage.conftest import RemoteFactory

PASSWORD = "correct horse 1"
FACT = "The Quillon observatory keeps its lens in a vault beneath Lake Varnis."


async def user_id(client: httpx.AsyncClient, headers: dict[str, str]) -> int:
    return int((await client.get("/api/me/", headers=headers)).json()["id"])


async def count(state: State, model: type[Base], **where: Any) -> int:
    async with state["sessions"]() as session:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int((await session.execute(query)).scalar_one())


async def audit(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/admin/audit/", headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_search_users_by_email_or_username_pages_by_cursor(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        for name in ("alice", "alicia", "bob", "ALIce.smith"):
            await new_user(client, f"{name}@example.com")

        first = (await client.get("/api/admin/users/?q=ALI&limit=2", headers=admin)).json()
        rest = (
            await client.get(
                f"/api/admin/users/?q=ALI&limit=2&cursor={first['next_cursor']}", headers=admin
            )
        ).json()
        wildcard = (await client.get("/api/admin/users/?q=%25", headers=admin)).json()

        found = [u["email"] for u in first["items"] + rest["items"]]
        assert found == ["alice@example.com", "alicia@example.com", "alice.smith@example.com"]
        assert rest["next_cursor"] is None
        assert wildcard["items"] == []  # `%` is a character to find, not a wildcard
        nul = await client.get("/api/admin/users/?q=a%00b", headers=admin)
        assert nul.status_code == 422


async def test_user_detail_counts_documents_conversations_and_tokens(
    remote: RemoteFactory,
) -> None:
    async with remote(user_daily_token_budget=5_000) as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        user = await new_user(client)
        await client.post(
            "/api/documents/", json={"title": "Observatory", "content": FACT}, headers=user
        )
        await client.post("/api/chat/", json={"message": "Where is the lens?"}, headers=user)

        detail = (
            await client.get(f"/api/admin/users/{await user_id(client, user)}/", headers=admin)
        ).json()

        assert detail["documents"] == 1
        assert detail["conversations"] == 1
        assert detail["messages"] == 2
        assert detail["tokens_today"] == detail["tokens_total"] == 15  # the fake's usage
        assert detail["daily_token_budget"] is None
        assert detail["effective_daily_token_budget"] == 5_000
        missing = await client.get("/api/admin/users/999999/", headers=admin)
        assert missing.status_code == 404


async def test_disable_user_stops_tokens_keys_and_refresh_at_once(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        await new_user(client)
        login = await client.post(
            "/api/login/", json={"email": "ada@example.com", "password": PASSWORD}
        )
        tokens = login.json()
        user = {"Authorization": f"Bearer {tokens['access']}"}
        key = await create_key(client, user)
        uid = await user_id(client, user)

        disabled = await client.patch(
            f"/api/admin/users/{uid}/", json={"is_active": False}, headers=admin
        )

        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["is_active"] is False
        assert (await client.get("/api/me/", headers=user)).status_code == 401
        assert (await client.get("/v1/models", headers=key)).status_code == 401
        refreshed = await client.post("/api/token/refresh/", json={"refresh": tokens["refresh"]})
        assert refreshed.status_code == 401
        again = await client.patch(
            f"/api/admin/users/{uid}/", json={"is_active": True}, headers=admin
        )
        assert again.json()["is_active"] is True
        assert (await client.get("/v1/models", headers=key)).status_code == 200


async def test_admin_budget_override_applies_to_the_next_turn(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        user = await new_user(client)
        uid = await user_id(client, user)
        await client.patch(
            f"/api/admin/users/{uid}/", json={"daily_token_budget": 1}, headers=admin
        )
        assert (
            await client.post("/api/chat/", json={"message": "Hi?"}, headers=user)
        ).status_code == 200

        refused = await client.post("/api/chat/", json={"message": "Hi again?"}, headers=user)
        await client.patch(
            f"/api/admin/users/{uid}/", json={"daily_token_budget": 0}, headers=admin
        )
        unlimited = await client.post("/api/chat/", json={"message": "And now?"}, headers=user)

        assert refused.status_code == 429
        assert refused.json()["error"] == "token_budget_exceeded"
        assert unlimited.status_code == 200
        reset = await client.patch(
            f"/api/admin/users/{uid}/", json={"daily_token_budget": None}, headers=admin
        )
        assert reset.json()["daily_token_budget"] is None
        bad = await client.patch(
            f"/api/admin/users/{uid}/", json={"daily_token_budget": -1}, headers=admin
        )
        assert bad.status_code == 422
        unknown = await client.patch(f"/api/admin/users/{uid}/", json={"role": "x"}, headers=admin)
        assert unknown.status_code == 422


async def test_last_active_admin_cannot_be_demoted_disabled_or_deleted(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        uid = await user_id(client, admin)
        url = f"/api/admin/users/{uid}/"

        demote = await client.patch(url, json={"is_admin": False}, headers=admin)
        disable = await client.patch(url, json={"is_active": False}, headers=admin)
        delete = await client.delete(url, headers=admin)

        for response in (demote, disable, delete):
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "last_admin"
        me = (await client.get("/api/admin/users/", headers=admin)).json()["items"][0]
        assert (me["is_admin"], me["is_active"]) == (True, True)
        assert await audit(client, admin) == []  # refused actions change nothing, log nothing
        # With a second administrator, the first may step down.
        await admin_headers(client, state, "second@example.com")
        assert (await client.patch(url, json={"is_admin": False}, headers=admin)).status_code == 200


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, state):
        first = await admin_headers(client, state, "first@example.com")
        second = await admin_headers(client, state, "second@example.com")
        first_id, second_id = await user_id(client, first), await user_id(client, second)

        results = await asyncio.gather(
            client.patch(f"/api/admin/users/{second_id}/", json={"is_admin": False}, headers=first),
            client.patch(f"/api/admin/users/{first_id}/", json={"is_admin": False}, headers=second),
        )

        # One wins; the other is refused as the last admin's demotion (409) or, when its
        # caller was already demoted by the time its credential was resolved, as a non-admin.
        statuses = sorted(r.status_code for r in results)
        assert statuses[0] == 200, statuses
        assert statuses[1] in (403, 409), statuses
        async with state["sessions"]() as session:
            admins = (
                await session.execute(select(func.count()).where(User.is_admin.is_(True)))
            ).scalar_one()
        assert admins == 1


async def test_delete_user_removes_everything_they_own_including_vectors(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        keeper = await new_user(client, "keeper@example.com")
        await client.post(
            "/api/documents/",
            json={"title": "Other", "content": "Tallinn has a harbour."},
            headers=keeper,
        )
        user = await new_user(client)
        uid = await user_id(client, user)
        doc = await client.post(
            "/api/documents/", json={"title": "Observatory", "content": FACT}, headers=user
        )
        doc_id = doc.json()["id"]
        await client.post("/api/chat/", json={"message": "Where is the lens?"}, headers=user)
        history = (await client.get("/api/chat-history/", headers=user)).json()
        bot = next(m for m in history if m["role"] == "bot")
        await client.put(
            f"/api/messages/{bot['id']}/feedback/", json={"rating": "up"}, headers=user
        )
        assert await count(state, VectorEntry, document_id=doc_id) > 0

        deleted = await client.delete(f"/api/admin/users/{uid}/", headers=admin)

        assert deleted.status_code == 204, deleted.text
        assert await count(state, VectorEntry, document_id=doc_id) == 0
        assert await count(state, Document, id=doc_id) == 0
        assert await count(state, ChatMessage, user_id=uid) == 0
        assert await count(state, MessageFeedback, user_id=uid) == 0
        assert await count(state, TokenUsage, user_id=uid) == 0
        assert (await client.get("/api/me/", headers=user)).status_code == 401
        assert (await client.get(f"/api/admin/users/{uid}/", headers=admin)).status_code == 404
        assert (await client.get("/api/documents/", headers=keeper)).json()  # others untouched
        [entry] = await audit(client, admin)
        assert (entry["action"], entry["target_id"]) == ("user.delete", uid)
        assert entry["details"]["email"] == "ada@example.com"


async def test_every_admin_action_is_in_the_audit_log_newest_first(
    remote: RemoteFactory,
) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        admin_id = await user_id(client, admin)
        uid = await user_id(client, await new_user(client))

        await client.patch(f"/api/admin/users/{uid}/", json={"is_admin": True}, headers=admin)
        await client.patch(f"/api/admin/users/{uid}/", json={"is_active": False}, headers=admin)
        key = await create_key(client, admin, scopes=["admin"])
        await client.get("/api/admin/feedback/?rating=down", headers=key)
        await client.delete(f"/api/admin/users/{uid}/", headers=admin)

        entries = await audit(client, admin)
        assert [(e["action"], e["target_id"]) for e in entries] == [
            ("user.delete", uid),
            ("feedback.read_json", None),
            ("apikey.create", entries[2]["target_id"]),
            ("user.update", uid),
            ("user.update", uid),
        ]
        assert all(e["actor_id"] == admin_id for e in entries)
        assert all(e["actor_email"] == "admin@example.com" for e in entries)
        assert entries[1]["details"]["rating"] == "down"
        assert "via_api_key" in entries[1]["details"]
        assert entries[3]["details"] == {"changes": {"is_active": [True, False]}}
        assert entries[4]["details"] == {"changes": {"is_admin": [False, True]}}
        page = (await client.get("/api/admin/audit/?limit=2", headers=admin)).json()
        assert [e["id"] for e in page["items"]] == [entries[0]["id"], entries[1]["id"]]
        assert page["next_cursor"] is not None


async def test_audit_entries_past_their_retention_are_purged(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        uid = await user_id(client, await new_user(client))
        await client.patch(
            f"/api/admin/users/{uid}/", json={"daily_token_budget": 9}, headers=admin
        )

        kept = await purge_audit(state["sessions"], retention_days=30, batch_size=10)
        purged = await purge_audit(
            state["sessions"], retention_days=30, batch_size=10, now=utcnow() + timedelta(days=31)
        )

        assert (kept, purged) == (0, 1)
        assert await count(state, AuditEntry) == 0


async def test_admin_usage_reports_per_user_and_day(remote: RemoteFactory) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        heavy, light = (
            await new_user(client, "heavy@example.com"),
            await new_user(client, "light@example.com"),
        )
        # Each turn in a new conversation: no memory, so one LLM call (15 tokens) per turn.
        for headers in (heavy, heavy, light):
            created = await client.post("/api/conversations/", json={}, headers=headers)
            await client.post(
                "/api/chat/",
                json={"message": "Hi?", "conversation_id": created.json()["id"]},
                headers=headers,
            )

        report = (await client.get("/api/admin/usage/?days=7", headers=admin)).json()
        only = (
            await client.get(
                f"/api/admin/usage/?user_id={await user_id(client, light)}", headers=admin
            )
        ).json()
        too_long = await client.get("/api/admin/usage/?days=100000", headers=admin)

        assert [u["email"] for u in report["users"]] == ["heavy@example.com", "light@example.com"]
        assert [u["totals"]["total_tokens"] for u in report["users"]] == [30, 15]
        assert report["users"][0]["days"][0]["turns"] == 2
        assert report["totals"]["total_tokens"] == 45
        assert [u["email"] for u in only["users"]] == ["light@example.com"]
        assert too_long.status_code == 422
