"""Behaviours that mutation testing showed untested (issue 6 §4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api.state import State
from app.chat.models import ChatMessage
from app.chat.retention import purge_old_messages
from app.rag.pipeline import PipelineConfig, RagPipeline
from app.rag.protocols import ScoredChunk, Visibility
from tests.rag.test_pipeline import FixedStore, OneHotEmbedder, RecordingGenerator
from tests.test_retention import add_messages, add_user

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "kept"),
    [
        pytest.param(timedelta(days=30), True, id="exactly-30-days"),
        pytest.param(timedelta(days=30, microseconds=1), False, id="a-microsecond-older"),
        pytest.param(
            timedelta(days=30) - timedelta(microseconds=1), True, id="a-microsecond-newer"
        ),
    ],
)
async def test_retention_cutoff_is_exact(
    sessions: async_sessionmaker[AsyncSession], age: timedelta, kept: bool
) -> None:
    user = await add_user(sessions, "ada@example.com")
    await add_messages(sessions, user, timedelta(0), 1)
    async with sessions.begin() as session:  # pin the timestamp to the test's clock
        message = (await session.execute(select(ChatMessage))).scalar_one()
        message.timestamp = NOW - age

    deleted = await purge_old_messages(sessions, retention_days=30, batch_size=10, now=NOW)

    assert deleted == (0 if kept else 1)


async def test_chunk_overlap_setting_reaches_the_chunks(state: State) -> None:
    text = " ".join(f"Sentence {n} talks about the harbour of Tallinn." for n in range(60))
    service = state["documents"]
    service.settings = service.settings.model_copy(
        update={"chunk_tokens": 40, "chunk_overlap_tokens": 15}
    )
    overlapping = await service.chunk(text)
    service.settings = service.settings.model_copy(update={"chunk_overlap_tokens": 0})
    disjoint = await service.chunk(text)

    assert len(overlapping) > len(disjoint) > 1
    # With overlap, each chunk starts with the end of the previous one.
    first_sentence_of_second = overlapping[1].split(".")[0]
    assert first_sentence_of_second in overlapping[0]
    assert disjoint[1].split(".")[0] not in disjoint[0]


@pytest.mark.parametrize(
    ("score", "retrieved"),
    [
        pytest.param(0.3, True, id="equal-to-min-score"),
        pytest.param(0.2999, False, id="just-below"),
    ],
)
async def test_min_score_is_inclusive(score: float, retrieved: bool) -> None:
    chunk = ScoredChunk("c1", 1, "Doc", "A fact.", score)
    pipeline = RagPipeline(
        OneHotEmbedder(), FixedStore([chunk]), RecordingGenerator(), PipelineConfig(min_score=0.3)
    )
    assert (await pipeline.retrieve("q", visibility=Visibility.of_user(1)) == [chunk]) is retrieved
