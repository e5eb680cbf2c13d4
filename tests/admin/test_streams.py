"""Disabling a user ends their open streams (the stream's re-check of its caller, issue 22)."""

from __future__ import annotations

import asyncio
import json

from tests.admin.conftest import admin_headers
from tests.conftest import new_user
from tests.fakes.huggingface import FakeHuggingFace, Fault, delay
from tests.usage.conftest import RemoteFactory


async def test_disable_user_mid_stream_ends_their_open_stream(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote(stream_principal_check_seconds=0.1) as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        user = await new_user(client)
        uid = (await client.get("/api/me/", headers=user)).json()["id"]
        # The question's embedding is answered at once; the LLM is slow to answer, so the
        # stream stays open meanwhile.
        hf.push(Fault(), delay(5))
        body = {
            "model": "rag",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "stream": True,
        }
        stream = asyncio.create_task(client.post("/v1/chat/completions", json=body, headers=user))
        assert await asyncio.to_thread(hf.chat_received.wait, 10)  # the stream is open

        disabled = await client.patch(
            f"/api/admin/users/{uid}/", json={"is_active": False}, headers=admin
        )
        response = await stream

        assert disabled.status_code == 200
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["code"] == "invalid_api_key"  # OpenAI's code for a 401 (CallerRevoked)
        assert "revoked" in error["message"]
        contents = [
            choice["delta"].get("content")
            for event in events[:-2]
            for choice in json.loads(event)["choices"]
        ]
        assert "Paris" not in "".join(c or "" for c in contents)  # ended before the answer
