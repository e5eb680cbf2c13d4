# ruff: noqa: S608 - SQL is built from this module's constants; values are bound parameters
"""The lexical index: full-text search over chunks, in the app's own database.

Dense vectors rank paraphrases well but miss exact identifiers, codes and rare words
("E1042", `work_mem`, `SET CONSTRAINTS`); a term index finds those at once. The index lives in
our database whatever the vector store (local or Pinecone), beside the documents table, so the
visibility rule and the `deleting` status are part of its query.

* SQLite: an FTS5 table with external content (`lexical_chunks`), kept in step by triggers
  (foreign-key cascades fire them too), ranked by BM25 with per-column weights.
* PostgreSQL: a stored generated `tsvector` column with a GIN index, ranked by `ts_rank`.

Both are created by DDL outside the models (`INDEX_DDL`, the migration 0007); `is_index_object`
tells schema comparisons to leave them alone.

Rows hold the chunk's title, its section heading (markdown) and its text: the title and the
heading weigh more than the text, so a chunk that says "it" is still found by its subject.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import (
    DDL,
    ForeignKey,
    Integer,
    String,
    Text,
    column,
    delete,
    event,
    func,
    insert,
    select,
    table,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base
from app.rag.protocols import ChunkRecord, Visibility

TABLE: Final = "lexical_chunks"
FTS_TABLE: Final = "lexical_chunks_fts"
PG_COLUMN: Final = "search"
PG_INDEX: Final = "ix_lexical_chunks_search"
# FTS5 keeps its index in these shadow tables (external content: no `_content` table).
FTS_SHADOW_TABLES: Final = frozenset(
    {FTS_TABLE, *(f"{FTS_TABLE}_{s}" for s in ("data", "idx", "docsize", "config"))}
)
DELETING_STATUS: Final = "deleting"
# Column weights: title, heading, text (BM25 in FTS5; PostgreSQL's A, B and D weights).
TITLE_WEIGHT: Final = 3.0
HEADING_WEIGHT: Final = 2.0
TEXT_WEIGHT: Final = 1.0
UPSERT_BATCH: Final = 500


class LexicalChunk(Base):
    """A chunk as the lexical index sees it: private to `owner_id`, in the collection
    `collection_id`, or shared (both NULL), as in ChunkRecord."""

    __tablename__ = TABLE

    # The FTS5 rowid (external content): the row's integer key.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chunk_id: Mapped[str] = mapped_column(String(128), unique=True)
    document_id: Mapped[int] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(Integer, default=None)
    collection_id: Mapped[int | None] = mapped_column(Integer, default=None)
    title: Mapped[str] = mapped_column(String(500))
    heading: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text)


SQLITE_CREATE: Final = (
    f"CREATE VIRTUAL TABLE {FTS_TABLE} USING fts5(title, heading, text, "
    f"content='{TABLE}', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER {TABLE}_ai AFTER INSERT ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}(rowid, title, heading, text) "
    "VALUES (new.id, new.title, new.heading, new.text); END",
    f"CREATE TRIGGER {TABLE}_ad AFTER DELETE ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, heading, text) "
    "VALUES ('delete', old.id, old.title, old.heading, old.text); END",
    f"CREATE TRIGGER {TABLE}_au AFTER UPDATE ON {TABLE} BEGIN "
    f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, title, heading, text) "
    "VALUES ('delete', old.id, old.title, old.heading, old.text); "
    f"INSERT INTO {FTS_TABLE}(rowid, title, heading, text) "
    "VALUES (new.id, new.title, new.heading, new.text); END",
)
SQLITE_DROP: Final = (f"DROP TABLE IF EXISTS {FTS_TABLE}",)
# 'english' as a regconfig literal keeps to_tsvector immutable, as generated columns require.
PG_CREATE: Final = (
    f"ALTER TABLE {TABLE} ADD COLUMN {PG_COLUMN} tsvector GENERATED ALWAYS AS ("
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, heading), 'B') || "
    "setweight(to_tsvector('english'::regconfig, text), 'D')) STORED",
    f"CREATE INDEX {PG_INDEX} ON {TABLE} USING gin ({PG_COLUMN})",
)
INDEX_DDL: Final = {"sqlite": (SQLITE_CREATE, SQLITE_DROP), "postgresql": (PG_CREATE, ())}

for _dialect, (_create, _drop) in INDEX_DDL.items():
    for _statement in _create:
        ddl = DDL(_statement).execute_if(dialect=_dialect)  # type: ignore[no-untyped-call]
        event.listen(LexicalChunk.__table__, "after_create", ddl)
    for _statement in _drop:
        ddl = DDL(_statement).execute_if(dialect=_dialect)  # type: ignore[no-untyped-call]
        event.listen(LexicalChunk.__table__, "before_drop", ddl)


def is_index_object(name: str | None, type_: str, parent: str | None = None) -> bool:
    """True for the schema objects made by `INDEX_DDL` (not in the models): the FTS5 tables,
    the tsvector column and its index. Migration checks skip them."""
    if type_ == "table":
        return name in FTS_SHADOW_TABLES
    if type_ == "column":
        return parent == TABLE and name == PG_COLUMN
    if type_ == "index":
        return name == PG_INDEX
    return False


# --- queries ------------------------------------------------------------------------------

# Words that carry no topic: they would match most chunks and only slow the ranking down.
_STOPWORD_TEXT: Final = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while
    who whom why will with would you your yours use used using get gets make makes way ways
    happen happens happened mean means one ones"""
STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())
# Identifier-like runs: `work_mem`, `E1042`, `__init__`, `str.join`, `HR-17`.
_TERM = re.compile(r"[\w]+(?:[.\-'][\w]+)*", re.UNICODE)
MAX_QUERY_TERMS: Final = 32


def query_terms(question: str) -> list[str]:
    """The question's distinct content terms, in order: stopwords and one-letter words go."""
    seen: set[str] = set()
    terms: list[str] = []
    for match in _TERM.finditer(question.lower()):
        term = match.group(0).strip("_")
        if len(term) < 2 or term in STOPWORDS or term in seen:
            continue
        seen.add(term)
        terms.append(term)
    return terms[:MAX_QUERY_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """Any of the terms; each one quoted, so FTS5 reads `work_mem` as the phrase "work mem"
    and never parses operators out of user text."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


@dataclass(frozen=True, slots=True)
class LexicalHit:
    """A chunk found by its terms; `rank` is 0 for the best. `score` is the engine's own
    relevance (BM25 in FTS5, ts_rank in PostgreSQL), comparable only within one query."""

    id: str
    document_id: int
    title: str
    text: str
    score: float


_documents = table("documents", column("id", Integer), column("status", String))


def visibility_sql(visibility: Visibility) -> tuple[str, dict[str, Any]]:
    """The visibility rule as a WHERE clause over the chunk alias `c`, with its parameters
    (collection ids bound one by one: both drivers expand them, and the count is bounded by
    the caller's memberships)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if visibility.owner_id is not None:
        clauses.append("(c.owner_id = :owner_id AND c.collection_id IS NULL)")
        params["owner_id"] = visibility.owner_id
    if visibility.collection_ids:
        names = [f"c{i}" for i in range(len(visibility.collection_ids))]
        clauses.append(f"c.collection_id IN ({', '.join(':' + n for n in names)})")
        params.update(zip(names, sorted(visibility.collection_ids), strict=True))
    if visibility.include_shared:
        clauses.append("(c.owner_id IS NULL AND c.collection_id IS NULL)")
    return " OR ".join(clauses) or "1 = 0", params


class LexicalIndex:
    """Writes chunks to the lexical index and searches it with the visibility rule inside."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._dialect: str | None = None

    def _dialect_of(self, session: AsyncSession) -> str:
        if self._dialect is None:
            self._dialect = session.get_bind().dialect.name
        return self._dialect

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        """Insert or replace by chunk id (the triggers or the generated column index them)."""
        if not records:
            return
        async with self._sessions.begin() as session:
            for start in range(0, len(records), UPSERT_BATCH):
                batch = records[start : start + UPSERT_BATCH]
                await session.execute(
                    delete(LexicalChunk).where(LexicalChunk.chunk_id.in_([r.id for r in batch]))
                )
                await session.execute(
                    insert(LexicalChunk),
                    [
                        {
                            "chunk_id": r.id,
                            "document_id": r.document_id,
                            "owner_id": r.owner_id,
                            "collection_id": r.collection_id,
                            "title": r.title,
                            "heading": r.heading,
                            "text": r.text,
                        }
                        for r in batch
                    ],
                )

    async def delete(self, ids: Sequence[str]) -> None:
        if ids:
            async with self._sessions.begin() as session:
                await session.execute(delete(LexicalChunk).where(LexicalChunk.chunk_id.in_(ids)))

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        if document_ids:
            async with self._sessions.begin() as session:
                await session.execute(
                    delete(LexicalChunk).where(LexicalChunk.document_id.in_(list(document_ids)))
                )

    async def remove_orphans(self) -> int:
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(LexicalChunk).where(LexicalChunk.document_id.not_in(select(_documents.c.id)))
            )
        return int(getattr(result, "rowcount", 0))

    async def search(
        self, question: str, *, top_k: int, visibility: Visibility
    ) -> list[LexicalHit]:
        """The `top_k` best term matches among the documents `visibility` admits that are not
        being deleted, best first; [] when the question has no content term."""
        terms = query_terms(question)
        if not terms or top_k <= 0 or visibility.nothing:
            return []
        where, params = visibility_sql(visibility)
        async with self._sessions() as session:
            if self._dialect_of(session) == "postgresql":
                rows = await self._search_postgresql(session, terms, top_k, where, params)
            else:
                rows = await self._search_sqlite(session, terms, top_k, where, params)
        return [
            LexicalHit(
                id=row.chunk_id,
                document_id=row.document_id,
                title=row.title,
                text=row.text,
                score=float(row.score),
            )
            for row in rows
        ]

    @staticmethod
    async def _search_sqlite(
        session: AsyncSession, terms: list[str], top_k: int, where: str, params: dict[str, Any]
    ) -> Sequence[Any]:
        # bm25() is lower for better matches; negated so that higher is better everywhere.
        statement = text(
            f"SELECT c.chunk_id, c.document_id, c.title, c.text, "
            f"-bm25({FTS_TABLE}, :wt, :wh, :wx) AS score "
            f"FROM {FTS_TABLE} JOIN {TABLE} c ON c.id = {FTS_TABLE}.rowid "
            "JOIN documents d ON d.id = c.document_id "
            f"WHERE {FTS_TABLE} MATCH :query AND ({where}) "
            "AND d.status != :deleting "
            f"ORDER BY bm25({FTS_TABLE}, :wt, :wh, :wx) LIMIT :top_k"
        )
        result = await session.execute(
            statement,
            {
                **params,
                "query": fts5_query(terms),
                "deleting": DELETING_STATUS,
                "top_k": top_k,
                "wt": TITLE_WEIGHT,
                "wh": HEADING_WEIGHT,
                "wx": TEXT_WEIGHT,
            },
        )
        return result.all()

    @staticmethod
    async def _search_postgresql(
        session: AsyncSession, terms: list[str], top_k: int, where: str, params: dict[str, Any]
    ) -> Sequence[Any]:
        # One plainto_tsquery per term, OR-ed: any term may match, and each term's own
        # punctuation (`work_mem`) is parsed the way the indexed text was.
        names = [f"t{i}" for i in range(len(terms))]
        query = " || ".join(f"plainto_tsquery('english'::regconfig, :{n})" for n in names)
        # ts_rank's weights array is {D, C, B, A}; normalization 1 divides by 1 + log(length).
        weights = f"'{{{TEXT_WEIGHT / TITLE_WEIGHT}, 0, {HEADING_WEIGHT / TITLE_WEIGHT}, 1}}'"
        statement = text(
            f"SELECT c.chunk_id, c.document_id, c.title, c.text, "
            f"ts_rank({weights}::float4[], c.{PG_COLUMN}, q.query, 1) AS score "
            f"FROM (SELECT ({query}) AS query) q, {TABLE} c "
            "JOIN documents d ON d.id = c.document_id "
            f"WHERE c.{PG_COLUMN} @@ q.query "
            f"AND ({where}) AND d.status != :deleting "
            "ORDER BY score DESC, c.id LIMIT :top_k"
        )
        bound: dict[str, Any] = dict(zip(names, terms, strict=True))
        bound.update(params, deleting=DELETING_STATUS, top_k=top_k)
        return (await session.execute(statement, bound)).all()

    async def count(self) -> int:
        async with self._sessions() as session:
            return int((await session.execute(select(func.count(LexicalChunk.id)))).scalar_one())
