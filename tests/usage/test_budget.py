"""The daily token budget: reservations make it exact under concurrency, a refused turn makes
no LLM call, and the next UTC day (the meter's clock seam) it works again."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select, update

from app.api.state import State
from app.auth.models import User
from app.rag.text import count_tokens
from app.usage.models import TokenReservation, TokenUsage
from tests.conftest import new_user
from tests.fakes.huggingface import FakeHuggingFace, status
from tests.usage.conftest import MAX_TOKENS, RemoteFactory, llm_calls

QUESTION = "What is the capital of France?"
LATE_EVENING = datetime(2026, 12, 4, 23, 0, 0, tzinfo=UTC)
NEXT_MORNING = datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC)


def completion_body(**extra: Any) -> dict[str, Any]:
    return {"model": "rag", "messages": [{"role": "user", "content": QUESTION}], **extra}


async def set_budget(state: State, email: str, budget: int | None) -> None:
    async with state["sessions"].begin() as session:
        await session.execute(
            update(User).where(User.email == email).values(daily_token_budget=budget)
        )


async def usage_rows(state: State, email: str) -> list[TokenUsage]:
    async with state["sessions"]() as session:
        query = select(TokenUsage).join(User, User.id == TokenUsage.user_id)
        rows = await session.execute(query.where(User.email == email).order_by(TokenUsage.id))
        return list(rows.scalars())


async def reservations(state: State) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count(TokenReservation.id)))).scalar_one())


def prompt_estimate(fake: FakeHuggingFace, index: int = -1) -> int:
    """Our documented estimate of a prompt the LLM got: count_tokens + 4 per message."""
    body = [r for r in fake.requests if r.path == "/v1/chat/completions"][index].json
    return sum(count_tokens(m["content"]) + 4 for m in body["messages"])


def assert_budget_refusal(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "token_budget_exceeded"
    assert int(response.headers["retry-after"]) >= 1


async def test_concurrent_turns_small_budget_get_exactly_the_turns_it_allows(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote() as (client, state):
        state["usage"].clock = lambda: LATE_EVENING
        # One unmetered turn by someone else shows the prompt every identical request sends.
        other = await new_user(client, "calibration@example.com")
        assert (
            await client.post("/v1/chat/completions", json=completion_body(), headers=other)
        ).status_code == 200
        # The fake then reports exactly what a turn reserves (its prompt by our estimate plus
        # max_tokens), so the count below cannot depend on how the 20 requests interleave.
        per_turn = prompt_estimate(hf) + MAX_TOKENS
        hf.usage = (per_turn - MAX_TOKENS, MAX_TOKENS)
        headers = await new_user(client)
        await set_budget(state, "ada@example.com", 4 * per_turn + 1)  # room to start 5 turns
        calls_before = llm_calls(hf)

        responses = await asyncio.gather(
            *(
                client.post("/v1/chat/completions", json=completion_body(), headers=headers)
                for _ in range(20)
            )
        )

        answered = [r for r in responses if r.status_code == 200]
        assert len(answered) == 5
        for refused in (r for r in responses if r.status_code != 200):
            assert_budget_refusal(refused)
        assert llm_calls(hf) - calls_before == 5
        assert all(r.json()["usage"]["total_tokens"] == per_turn for r in answered)
        me = (await client.get("/api/me/usage/", headers=headers)).json()
        assert me["budget"]["used_today"] == 5 * per_turn  # the budget plus less than one turn
        assert await reservations(state) == 0

        late = await client.post("/v1/chat/completions", json=completion_body(), headers=headers)
        assert_budget_refusal(late)
        assert late.headers["retry-after"] == "3600"  # 23:00 UTC: until midnight
        assert llm_calls(hf) - calls_before == 5  # refused without calling the LLM

        state["usage"].clock = lambda: NEXT_MORNING
        again = await client.post("/v1/chat/completions", json=completion_body(), headers=headers)
        assert again.status_code == 200, again.text
        assert llm_calls(hf) - calls_before == 6


async def test_spent_budget_refuses_chat_and_stream_without_upstream_call(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote() as (client, state):
        state["usage"].clock = lambda: LATE_EVENING
        headers = await new_user(client)
        await set_budget(state, "ada@example.com", 1)
        first = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert first.status_code == 200, first.text
        calls = llm_calls(hf)

        chat = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        stream = await client.post("/api/chat/stream/", json={"message": QUESTION}, headers=headers)

        for refused in (chat, stream):
            assert refused.status_code == 429
            assert refused.json()["error"] == "token_budget_exceeded"
            assert refused.headers["retry-after"] == "3600"
        assert llm_calls(hf) == calls
        history = (await client.get("/api/chat-history/", headers=headers)).json()
        assert len(history) == 2  # the refused questions were not stored


async def test_turn_reservation_is_replaced_by_the_reported_usage(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    hf.usage = (7, 3)
    async with remote(user_daily_token_budget=100_000) as (client, state):
        headers = await new_user(client)

        response = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)

        assert response.status_code == 200, response.text
        [row] = await usage_rows(state, "ada@example.com")
        assert (row.prompt_tokens, row.completion_tokens, row.estimated) == (7, 3, False)
        assert row.path == "chat"
        assert await reservations(state) == 0
        me = (await client.get("/api/me/usage/", headers=headers)).json()
        assert me["budget"] == {
            "daily_token_budget": 100_000,
            "used_today": 10,
            "remaining_today": 99_990,
        }


async def test_stream_with_include_usage_reports_the_llm_usage_in_the_last_chunk(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    hf.usage = (21, 4)
    async with remote() as (client, state):
        headers = await new_user(client)

        response = await client.post(
            "/v1/chat/completions",
            json=completion_body(stream=True, stream_options={"include_usage": True}),
            headers=headers,
        )

        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        last = json.loads(events[-2])
        assert last["choices"] == []
        assert last["usage"] == {"prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}
        sent = [r.json for r in hf.requests if r.path == "/v1/chat/completions"][-1]
        assert sent["stream_options"] == {"include_usage": True}
        [row] = await usage_rows(state, "ada@example.com")
        assert (row.prompt_tokens, row.completion_tokens, row.path) == (21, 4, "v1")


async def test_upstream_without_usage_records_an_estimate_marked_estimated(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    hf.usage = None
    async with remote() as (client, state):
        headers = await new_user(client)

        response = await client.post(
            "/v1/chat/completions", json=completion_body(), headers=headers
        )
        stream = await client.post("/api/chat/stream/", json={"message": QUESTION}, headers=headers)

        assert response.status_code == 200
        assert stream.status_code == 200
        rows = await usage_rows(state, "ada@example.com")
        assert [(r.path, r.estimated) for r in rows] == [("v1", True), ("stream", True)]
        first = rows[0]
        assert first.prompt_tokens == prompt_estimate(hf, 0)
        assert first.completion_tokens == count_tokens(
            response.json()["choices"][0]["message"]["content"]
        )
        assert response.json()["usage"] == {
            "prompt_tokens": first.prompt_tokens,
            "completion_tokens": first.completion_tokens,
            "total_tokens": first.prompt_tokens + first.completion_tokens,
        }
        me = (await client.get("/api/me/usage/", headers=headers)).json()
        assert me["totals"]["estimated"] is True
        assert me["days"][0]["estimated"] is True


async def test_failed_upstream_call_releases_its_reservation_and_records_nothing(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote() as (client, state):
        headers = await new_user(client)
        await set_budget(state, "ada@example.com", 1_000)
        hf.push(status(500))

        failed = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)

        assert failed.status_code == 502
        assert await reservations(state) == 0
        assert await usage_rows(state, "ada@example.com") == []
        ok = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert ok.status_code == 200, ok.text


async def test_follow_up_turn_counts_the_condensing_call_too(
    remote: RemoteFactory, hf: FakeHuggingFace
) -> None:
    async with remote() as (client, state):
        headers = await new_user(client)
        await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        calls = llm_calls(hf)

        follow_up = await client.post(
            "/api/chat/", json={"message": "And what about its population?"}, headers=headers
        )

        assert follow_up.status_code == 200, follow_up.text
        assert llm_calls(hf) - calls == 2  # the follow-up rewritten, then answered
        rows = await usage_rows(state, "ada@example.com")
        assert [(r.prompt_tokens, r.completion_tokens) for r in rows] == [(10, 5), (20, 10)]
