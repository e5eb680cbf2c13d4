"""The lexical index on SQLite FTS5 and PostgreSQL tsvector: terms, visibility, lifecycle."""

from __future__ import annotations

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.documents.models import Document, DocumentStatus
from app.rag.lexical import LexicalIndex, fts5_query, query_terms
from app.rag.protocols import Visibility
from tests.retrieval.conftest import record

FILLER = [
    "Backups run every night and are kept for thirty days in a second region.",
    "The kitchen espresso machine is descaled every Friday morning.",
    "Visitors park on level minus one and register at reception.",
    "Laptops lock after five minutes of inactivity and use disk encryption.",
    "New hires meet their mentor for lunch on the first day.",
]


async def _filled(sessions: async_sessionmaker[AsyncSession]) -> LexicalIndex:
    index = LexicalIndex(sessions)
    await index.upsert(
        [record(f"f{n}", n + 10, text) for n, text in enumerate(FILLER)]
        + [
            record("e1042", 1, "Error E1042 means the disk quota is exhausted."),
            record("workmem", 2, "Raise work_mem when sorts spill to disk."),
            record("constraints", 3, "SET CONSTRAINTS ALL DEFERRED delays the checks."),
        ]
    )
    return index


def test_query_terms_drop_stopwords_and_keep_identifiers() -> None:
    assert query_terms("What does the error E1042 mean for work_mem and str.join?") == [
        "error",
        "e1042",
        "work_mem",
        "str.join",
    ]


def test_fts5_query_quotes_operators_as_plain_terms() -> None:
    assert fts5_query(['a"b', "near"]) == '"a""b" OR "near"'


async def test_search_exact_code_finds_its_chunk_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    hits = await index.search("what is error E1042?", top_k=3, visibility=Visibility.of_user(1))

    assert hits[0].id == "e1042"
    assert hits[0].document_id == 1


async def test_search_identifier_with_underscore_finds_its_chunk_first(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    hits = await index.search("how do I tune work_mem", top_k=3, visibility=Visibility.of_user(1))

    assert [hit.id for hit in hits][:1] == ["workmem"]


async def test_search_words_in_other_forms_match_by_stem(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    hits = await index.search(
        "deferring constraint checking", top_k=3, visibility=Visibility.of_user(1)
    )

    assert hits[0].id == "constraints"


async def test_search_title_and_heading_are_indexed_with_the_text(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = LexicalIndex(sessions)
    await index.upsert(
        [
            record("a", 1, "It takes two weeks.", title="Onboarding", heading="Training"),
            record("b", 2, "Onboarding is mentioned here in passing, once, with training."),
        ]
    )

    hits = await index.search("onboarding training", top_k=2, visibility=Visibility.of_user(1))

    assert [hit.id for hit in hits] == ["a", "b"]
    assert hits[0].text == "It takes two weeks."


async def test_search_stopwords_only_returns_nothing(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    assert (
        await index.search("what is it and how does it", top_k=3, visibility=Visibility.of_user(1))
        == []
    )


async def test_search_fts_syntax_in_question_is_taken_literally(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    hits = await index.search(
        'NEAR(disk quota) "E1042 AND -OR * ^col:', top_k=3, visibility=Visibility.of_user(1)
    )

    assert hits[0].id == "e1042"


async def test_search_other_users_chunks_are_excluded_inside_the_query(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = LexicalIndex(sessions)
    # User 2's chunks match best; user 1 asks for one hit and must still get their own.
    await index.upsert(
        [record(f"other{n}", n, "zebra zebra zebra quota", owner=2) for n in range(1, 6)]
        + [record("mine", 6, "a zebra appears once", owner=1)]
        + [record("shared", 7, "zebra", owner=None)]
    )

    mine = await index.search("zebra quota", top_k=1, visibility=Visibility.of_user(1))
    everything = await index.search("zebra quota", top_k=10, visibility=Visibility.of_user(1))

    assert len(mine) == 1
    assert {hit.id for hit in everything} == {"mine", "shared"}


async def test_search_document_being_deleted_is_invisible(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)
    async with sessions.begin() as session:
        await session.execute(
            update(Document).where(Document.id == 1).values(status=DocumentStatus.DELETING)
        )

    hits = await index.search("E1042", top_k=3, visibility=Visibility.of_user(1))

    assert "e1042" not in {hit.id for hit in hits}


async def test_document_row_deleted_removes_its_chunks_from_the_index(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)
    before = await index.count()
    async with sessions.begin() as session:
        await session.execute(delete(Document).where(Document.id == 1))  # cascades

    assert await index.count() == before - 1
    assert await index.search("E1042", top_k=3, visibility=Visibility.of_user(1)) == []
    assert (await index.search("work_mem", top_k=3, visibility=Visibility.of_user(1)))[
        0
    ].id == "workmem"


async def test_upsert_same_id_replaces_the_indexed_text(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    await index.upsert([record("e1042", 1, "Error E2000 replaces the old code.")])

    assert await index.search("E1042", top_k=3, visibility=Visibility.of_user(1)) == []
    assert (await index.search("E2000", top_k=3, visibility=Visibility.of_user(1)))[0].id == "e1042"


async def test_delete_documents_and_ids_remove_rows_and_terms(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    index = await _filled(sessions)

    await index.delete_documents([1])
    await index.delete(["workmem"])

    assert await index.search("E1042 work_mem", top_k=3, visibility=Visibility.of_user(1)) == []
    assert (await index.search("SET CONSTRAINTS", top_k=3, visibility=Visibility.of_user(1)))[
        0
    ].id == "constraints"
