"""An open /v1 stream re-checks that its caller still reaches the collection it answers from:
a member removed mid-answer ends the stream with an error event and `[DONE]`, the upstream
generation stopped; a member who stays gets the whole answer. The real Hugging Face client
streams from the wire fake on 127.0.0.1, driven by events, not by sleeps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.collections.conftest import Team, make_team
from tests.conftest import AppFactory
from tests.conversations.conftest import remote_settings
from tests.security.test_stream_revocation import (  # noqa: F401 - fixtures
    WAIT,
    HeldStream,
    _assert_ended_with_error_then_done,
    _data,
    held,
    trickling,
)

LEAVE = "Employees receive 25 days of paid annual leave per calendar year."
QUESTION = "How many days of annual leave do employees get?"


def _body(team: Team) -> dict[str, Any]:
    return {
        "model": f"rag:{team.collection_id}",
        "stream": True,
        "messages": [{"role": "user", "content": QUESTION}],
    }


async def test_stream_member_removed_mid_answer_ends_with_error_and_done(
    app_factory: AppFactory,
    held: tuple[HeldStream, str],  # noqa: F811
) -> None:
    fake, url = held
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        state,
    ):
        team = await make_team(client, state)
        await team.add_document("editor", "Leave", LEAVE, collection_id=team.collection_id)
        stream = asyncio.create_task(
            client.post("/v1/chat/completions", json=_body(team), headers=team.headers["viewer"])
        )
        assert await asyncio.to_thread(fake.midway.wait, WAIT)
        removed = await client.delete(
            f"/api/collections/{team.collection_id}/members/{team.user_ids['viewer']}/",
            headers=team.headers["owner"],
        )
        response = await asyncio.wait_for(stream, WAIT)  # the upstream is still silent

    assert removed.status_code == 204
    assert response.status_code == 200
    _assert_ended_with_error_then_done(response.text)
    assert await asyncio.to_thread(fake.stopped.wait, WAIT)  # generation stopped
    assert not fake.finished


async def test_stream_member_who_stays_gets_whole_answer(
    app_factory: AppFactory,
    trickling: tuple[HeldStream, str],  # noqa: F811
) -> None:
    fake, url = trickling
    fake.answer = " ".join(f"w{n}" for n in range(12))
    async with app_factory(**remote_settings(url, stream_principal_check_seconds=0.1)) as (
        client,
        state,
    ):
        team = await make_team(client, state)
        await team.add_document("editor", "Leave", LEAVE, collection_id=team.collection_id)
        response = await client.post(
            "/v1/chat/completions", json=_body(team), headers=team.headers["viewer"]
        )

    data = _data(response.text)
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["choices"][0]["finish_reason"] == "stop"
    deltas = [json.loads(d)["choices"][0]["delta"].get("content") or "" for d in data[:-2]]
    assert "".join(deltas).split() == [f"w{n}" for n in range(12)]
