"""A small retrieval evaluation with the real local model: the right document ranks first."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.db import utcnow
from app.documents.models import Document, DocumentStatus
from app.rag.backends.local import LocalEmbedder, LocalVectorStore
from app.rag.protocols import ChunkRecord, Visibility
from tests.conftest import make_settings

DOCUMENTS = {
    "refunds": "Customers can return any product within 30 days of delivery for a full refund. "
    "Refunds are paid back to the original card within five business days.",
    "shipping": "Orders ship from our warehouse in Rotterdam. Standard delivery takes three to "
    "five days; express delivery arrives the next working day.",
    "passwords": "To reset your password, open the login page and choose 'Forgot password'. "
    "We email a reset link that expires after one hour.",
    "office": "Our head office is on the fourth floor of 12 Harbour Street. Reception is open "
    "from 8am to 6pm on weekdays.",
    "vacation": "Employees receive 25 days of paid annual leave. Unused leave can be carried "
    "over until the end of March of the following year.",
    "security": "All laptops must use full-disk encryption and lock after five minutes of "
    "inactivity. Report lost devices to the security team immediately.",
    "pricing": "The Pro plan costs 20 euros per user per month, billed annually. The Team plan "
    "adds single sign-on and audit logs.",
    "api": "API requests are limited to 100 per minute per token. Exceeding the limit returns "
    "HTTP 429 with a Retry-After header.",
    "parking": "Staff parking is in the underground garage; visitors park on level minus one "
    "and must register their licence plate at reception.",
    "coffee": "The kitchen espresso machine is descaled every Friday. Oat and soy milk are in "
    "the left fridge.",
    "backup": "Databases are backed up every night at 2am and backups are kept for 35 days in "
    "a second region.",
    "onboarding": "New hires get their laptop on the first morning and meet their mentor for "
    "lunch. Onboarding training lasts two weeks.",
}
QUESTIONS = [
    ("How long do I have to send an item back and get my money?", "refunds"),
    ("When will my package arrive if I pick express?", "shipping"),
    ("I forgot my password, what should I do?", "passwords"),
    ("What is the address of the main office?", "office"),
    ("How many holiday days do staff get per year?", "vacation"),
    ("What should I do if my work computer is stolen?", "security"),
    ("How much is the Pro subscription?", "pricing"),
    ("What happens when I send too many API calls?", "api"),
    ("Where can guests leave their car?", "parking"),
    ("Which plant-based milks are available in the kitchen?", "coffee"),
    ("How often is the database backed up?", "backup"),
    ("What happens during a new employee's first day?", "onboarding"),
]


@pytest.fixture(scope="module")
async def embedder() -> LocalEmbedder:
    return await LocalEmbedder.load(make_settings("sqlite+aiosqlite://"))


async def test_retrieval_ranks_right_document_first_for_90_percent(
    embedder: LocalEmbedder, sessions: async_sessionmaker[AsyncSession]
) -> None:
    store = LocalVectorStore(sessions)
    names = list(DOCUMENTS)
    now = utcnow()
    async with sessions.begin() as session:  # vectors belong to documents (a foreign key)
        session.add_all(
            Document(
                id=i,
                owner_id=None,
                shared=True,
                title=name,
                content_type="text/plain",
                content=DOCUMENTS[name],
                content_hash=f"{i:064d}",
                status=DocumentStatus.READY,
                chunks=1,
                created_at=now,
                updated_at=now,
            )
            for i, name in enumerate(names)
        )
    vectors = await embedder.embed([DOCUMENTS[n] for n in names])
    await store.upsert(
        [
            ChunkRecord(
                id=name,
                document_id=i,
                owner_id=None,
                title=name,
                text=DOCUMENTS[name],
                vector=vectors[i],
            )
            for i, name in enumerate(names)
        ]
    )
    hits = 0
    for question, expected in QUESTIONS:
        (query,) = await embedder.embed([question])
        top = await store.query(query, top_k=1, visibility=Visibility.of_user(1))
        hits += top[0].title == expected
    assert hits / len(QUESTIONS) >= 0.9, f"{hits}/{len(QUESTIONS)} ranked first"


async def test_embed_paraphrase_closer_than_unrelated(embedder: LocalEmbedder) -> None:
    a, b, c = await embedder.embed(
        ["How do I reset my password?", "I forgot my login password", "The cat sat on the mat"]
    )
    assert embedder.dimension == 384
    assert float(a @ b) > 0.5 > float(a @ c)
    assert abs(float(a @ a) - 1.0) < 1e-5


async def test_embed_concurrent_calls_match_single_calls(embedder: LocalEmbedder) -> None:
    texts = [f"question number {n} about topic {n % 3}" for n in range(12)]
    single = [(await embedder.embed([t]))[0] for t in texts]
    together = await asyncio.gather(*(embedder.embed([t]) for t in texts))
    assert all(m.shape == (1, 384) for m in together)
    for alone, merged in zip(single, together, strict=True):
        assert float(alone @ merged[0]) > 0.9999
