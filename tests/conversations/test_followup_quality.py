"""Follow-up retrieval on the embedded defaults (the real MiniLM model): the bounded version of
`python -m bench.bench_followup`, and the same behaviour through the chat API."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.rag.backends.local import LocalEmbedder
from app.rag.factory import build_generator, build_store, pipeline_config
from app.rag.pipeline import RagPipeline
from bench.bench_followup import GOAL_GAIN, GOAL_WITH_MEMORY, evaluate, index_documents, load_set
from tests.conftest import make_settings, new_user

pytestmark = pytest.mark.model

FOLLOWUPS = load_set()


@pytest.fixture(scope="module")
async def embedder() -> LocalEmbedder:
    return await LocalEmbedder.load(make_settings("sqlite+aiosqlite://"))


def test_followup_set_followups_name_none_of_their_key_terms() -> None:
    assert len(FOLLOWUPS.dialogues) >= 30
    for dialogue in FOLLOWUPS.dialogues:
        words = set(re.findall(r"[a-z0-9-]+", dialogue.followup.lower()))
        text = dialogue.followup.lower()
        named = [k for k in dialogue.keys if (k in words if " " not in k else k in text)]
        assert named == [], dialogue
        assert dialogue.doc in FOLLOWUPS.documents


async def test_followup_hit_at_3_with_memory_meets_goal_and_beats_without(
    embedder: LocalEmbedder, sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    settings = make_settings(database_url)  # the embedded defaults, as the app builds them
    store = await build_store(settings, sessions)
    await index_documents(sessions, store, embedder, FOLLOWUPS.documents, distractors=[])
    generator = build_generator(settings, embedder)
    pipeline = RagPipeline(embedder, store, generator, pipeline_config(settings))

    try:
        result = await evaluate(pipeline, FOLLOWUPS.dialogues)
    finally:
        await store.aclose()

    assert result.with_memory >= GOAL_WITH_MEMORY, result
    assert result.with_memory - result.without_memory >= GOAL_GAIN, result
    assert result.switch >= 0.9, result  # memory must not pull a new topic back to the old


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], name: str) -> None:
    body = {"title": name, "content": FOLLOWUPS.documents[name]}
    assert (await client.post("/api/documents/", json=body, headers=headers)).status_code == 201


async def _titles(
    client: httpx.AsyncClient, headers: dict[str, str], message: str, conversation_id: int
) -> list[str]:
    response = await client.post(
        "/api/chat/",
        json={"message": message, "conversation_id": conversation_id},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return [s["title"] for s in response.json()["sources"]]


async def test_chat_followup_retrieves_previous_topic_of_its_own_conversation_only(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    for name in ("annual-leave", "parking", "canteen", "salary", "pension", "backups"):
        await _upload(client, headers, name)
    leave = (await client.post("/api/conversations/", headers=headers)).json()["id"]
    parking = (await client.post("/api/conversations/", headers=headers)).json()["id"]
    await _titles(client, headers, "How many days of paid annual leave do employees get?", leave)
    await _titles(client, headers, "Where can staff park their cars?", parking)

    in_leave = await _titles(client, headers, "And how many of those roll into next year?", leave)
    in_parking = await _titles(client, headers, "What about guests?", parking)

    assert in_leave[0] == "annual-leave"
    assert in_parking[0] == "parking"
    assert "parking" not in in_leave
