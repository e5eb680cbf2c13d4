"""Logs never hold passwords, tokens, hashes, message or document text, even for a 500."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import select, text

from app.auth.models import User
from app.main import create_app
from app.models import Base
from app.testing import running_app
from tests.conftest import make_settings

EMAIL = "secretive.person@example.com"
PASSWORD = "hunter2-but-much-longer-Xq9"
MESSAGE = "Where is the key to the plum-coloured shed kept?"
DOCUMENT = "The key to the plum-coloured shed is kept under the third flowerpot."


async def test_full_flow_with_forced_500s_logs_no_secret(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secrets: list[str] = [EMAIL, PASSWORD, MESSAGE, DOCUMENT]
    app = create_app(make_settings(database_url))
    with caplog.at_level(logging.DEBUG):
        async with running_app(app, raise_app_exceptions=False) as (client, state):
            signup = {"email": EMAIL, "username": "quiet", "password": PASSWORD}
            assert (await client.post("/api/signup/", json=signup)).status_code == 201
            login = await client.post("/api/login/", json={"email": EMAIL, "password": PASSWORD})
            tokens: dict[str, Any] = login.json()
            secrets += [tokens["access"], tokens["refresh"]]
            headers = {"Authorization": f"Bearer {tokens['access']}"}
            async with state["sessions"]() as session:
                secrets.append((await session.execute(select(User.password_hash))).scalar_one())
            body = {"title": "Shed", "content": DOCUMENT}
            assert (
                await client.post("/api/documents/", json=body, headers=headers)
            ).status_code == 201
            chat = await client.post("/api/chat/", json={"message": MESSAGE}, headers=headers)
            assert chat.status_code == 200
            assert (await client.get("/api/chat-history/", headers=headers)).status_code == 200
            refreshed = await client.post(
                "/api/token/refresh/", json={"refresh": tokens["refresh"]}
            )
            secrets += list(refreshed.json().values())
            wrong = await client.post("/api/login/", json={"email": EMAIL, "password": "nope" * 3})
            assert wrong.status_code == 401

            # Forced 500s: every statement below fails inside the database with our data bound.
            # CASCADE on PostgreSQL: message_feedback's foreign key depends on the table.
            cascade = " CASCADE" if state["settings"].database_url.startswith("postgresql") else ""
            async with state["engine"].begin() as conn:
                await conn.execute(text(f"DROP TABLE chat_messages{cascade}"))
            failed = await client.post("/api/chat/", json={"message": MESSAGE}, headers=headers)
            assert failed.status_code == 500
            async with state["engine"].begin() as conn:
                await conn.execute(text("DROP TABLE vector_entries"))
            # Indexing fails with the document's text bound to the INSERT; logged, not leaked.
            failed = await client.post(
                "/api/documents/",
                json={"title": "Shed 2", "content": DOCUMENT + " Twice."},
                headers=headers,
            )
            assert failed.json()["status"] == "failed"
            async with state["engine"].begin() as conn:
                await conn.execute(text("DROP TABLE refresh_tokens"))
            failed = await client.post("/api/login/", json={"email": EMAIL, "password": PASSWORD})
            assert failed.status_code == 500
            assert "Traceback" not in failed.text
            async with state["engine"].begin() as conn:  # the next test shares a PG database
                if cascade:  # the whole schema again, foreign keys the CASCADE dropped included
                    await conn.execute(text("DROP SCHEMA public CASCADE"))
                    await conn.execute(text("CREATE SCHEMA public"))
                await conn.run_sync(Base.metadata.create_all)

    logged = caplog.text
    assert "Unhandled error" in logged  # the 500s were logged...
    assert "indexing document" in logged
    for secret in secrets:
        assert secret not in logged  # ...without what they were handling
