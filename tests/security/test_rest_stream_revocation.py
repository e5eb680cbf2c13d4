# ruff: noqa: F811 - the held/trickling fixtures are imported from test_stream_revocation
"""An open `POST /api/chat/stream/` re-checks its caller like a /v1 stream (one mechanism,
`StreamedReply.paced`): a key revoked, an account disabled or deleted, or a membership removed
from a collection the turn draws on, mid-answer, ends the stream with an `error` event
(`credentials_revoked`), the upstream generation stopped, and nothing raised unhandled
(`raise_app_exceptions` is on in the test client). The real Hugging Face client streams from
the wire fake on 127.0.0.1, driven by events, not by sleeps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from tests.admin.conftest import admin_headers
from tests.collections.conftest import make_team, user_id
from tests.conftest import AppFactory, new_user
from tests.conversations.conftest import remote_settings
from tests.security.test_stream_revocation import (  # noqa: F401 - fixtures
    LEAVE,
    PASSWORD,
    QUESTION,
    WAIT,
    HeldStream,
    held,
    trickling,
)

STREAM = "/api/chat/stream/"


def _events(body: str) -> list[tuple[str, Any]]:
    """(event name, data) of each SSE event, keep-alive comments left out."""
    events = []
    for block in body.strip().split("\n\n"):
        lines = block.splitlines()
        name = next((line[7:] for line in lines if line.startswith("event: ")), None)
        data = next((line[6:] for line in lines if line.startswith("data: ")), None)
        if name is not None and data is not None:
            events.append((name, json.loads(data)))
    return events


def _assert_ended_revoked(body: str) -> None:
    events = _events(body)
    assert events[0][0] == "sources"
    name, data = events[-1]
    assert name == "error", body[-500:]
    assert data["error"] == "credentials_revoked"
    assert {n for n, _ in events[1:-1]} <= {"delta"}  # no `done`


async def _upload_and_key(
    client: httpx.AsyncClient, jwt: dict[str, str], **key: Any
) -> tuple[dict[str, str], int]:
    upload = {"title": "Leave", "content": LEAVE}
    assert (await client.post("/api/documents/", json=upload, headers=jwt)).is_success
    created = await client.post("/api/keys/", json={"name": "sdk", **key}, headers=jwt)
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}, int(created.json()["id"])


async def test_rest_stream_key_revoked_while_upstream_silent_ends_with_error_event(
    app_factory: AppFactory, held: tuple[HeldStream, str]
) -> None:
    fake, url = held
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        _,
    ):
        jwt = await new_user(client)
        key, key_id = await _upload_and_key(client, jwt)
        stream = asyncio.create_task(client.post(STREAM, json={"message": QUESTION}, headers=key))
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        revoked = await client.delete(f"/api/keys/{key_id}/", headers=jwt)
        response = await asyncio.wait_for(stream, WAIT)  # the upstream is still silent

    assert revoked.status_code == 204
    assert response.status_code == 200
    _assert_ended_revoked(response.text)
    assert not fake.release.is_set()  # ended while the upstream was silent
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)  # generation stopped
    assert not fake.finished


async def test_rest_stream_account_deleted_while_tokens_flow_ends_with_error_event(
    app_factory: AppFactory, trickling: tuple[HeldStream, str]
) -> None:
    fake, url = trickling
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        _,
    ):
        jwt = await new_user(client)
        await _upload_and_key(client, jwt)
        stream = asyncio.create_task(client.post(STREAM, json={"message": QUESTION}, headers=jwt))
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        deleted = await client.request(
            "DELETE", "/api/me/", json={"password": PASSWORD}, headers=jwt
        )
        response = await asyncio.wait_for(stream, WAIT)

    assert deleted.status_code == 204
    assert response.status_code == 200
    _assert_ended_revoked(response.text)
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)
    assert not fake.finished  # 400 words at the upstream's pace would take 8 s more


async def test_rest_stream_account_disabled_mid_answer_ends_with_error_event(
    app_factory: AppFactory, held: tuple[HeldStream, str]
) -> None:
    fake, url = held
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        state,
    ):
        admin = await admin_headers(client, state, "admin@example.com")
        jwt = await new_user(client)
        await _upload_and_key(client, jwt)
        uid = await user_id(client, jwt)
        stream = asyncio.create_task(client.post(STREAM, json={"message": QUESTION}, headers=jwt))
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        disabled = await client.patch(
            f"/api/admin/users/{uid}/", json={"is_active": False}, headers=admin
        )
        response = await asyncio.wait_for(stream, WAIT)

    assert disabled.status_code == 200
    _assert_ended_revoked(response.text)
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)
    assert not fake.finished


async def test_rest_stream_narrowed_turn_member_removed_mid_answer_ends_with_error_event(
    app_factory: AppFactory, held: tuple[HeldStream, str]
) -> None:
    fake, url = held
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        state,
    ):
        team = await make_team(client, state)
        await team.add_document("editor", "Leave", LEAVE, collection_id=team.collection_id)
        body = {"message": QUESTION, "collection_ids": [team.collection_id]}
        stream = asyncio.create_task(client.post(STREAM, json=body, headers=team.headers["viewer"]))
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        removed = await client.delete(
            f"/api/collections/{team.collection_id}/members/{team.user_ids['viewer']}/",
            headers=team.headers["owner"],
        )
        response = await asyncio.wait_for(stream, WAIT)

    assert removed.status_code == 204
    _assert_ended_revoked(response.text)
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)
    assert not fake.finished


async def test_rest_stream_scoped_key_member_removed_mid_answer_ends_with_error_event(
    app_factory: AppFactory, held: tuple[HeldStream, str]
) -> None:
    fake, url = held
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        state,
    ):
        team = await make_team(client, state)
        await team.add_document("editor", "Leave", LEAVE, collection_id=team.collection_id)
        created = await client.post(
            "/api/keys/",
            json={"name": "scoped", "collection_ids": [team.collection_id]},
            headers=team.headers["viewer"],
        )
        assert created.status_code == 201, created.text
        key = {"Authorization": f"Bearer {created.json()['key']}"}
        stream = asyncio.create_task(client.post(STREAM, json={"message": QUESTION}, headers=key))
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        removed = await client.delete(
            f"/api/collections/{team.collection_id}/members/{team.user_ids['viewer']}/",
            headers=team.headers["owner"],
        )
        response = await asyncio.wait_for(stream, WAIT)

    assert removed.status_code == 204
    _assert_ended_revoked(response.text)
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)
    assert not fake.finished


async def test_rest_stream_valid_caller_gets_whole_answer_and_done(
    app_factory: AppFactory, trickling: tuple[HeldStream, str]
) -> None:
    fake, url = trickling
    fake.answer = " ".join(f"w{n}" for n in range(12))
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        _,
    ):
        jwt = await new_user(client)
        key, _ = await _upload_and_key(client, jwt)
        response = await client.post(STREAM, json={"message": QUESTION}, headers=key)

    events = _events(response.text)
    name, done = events[-1]
    assert name == "done", response.text[-500:]
    assert done["response"] == fake.answer
    assert "".join(d["text"] for n, d in events if n == "delta") == fake.answer
