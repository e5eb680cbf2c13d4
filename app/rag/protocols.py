"""The three swappable parts of the RAG pipeline and the values passed between them.

Backends implement these Protocols; the pipeline knows nothing else. Backends raise
`app.core.errors.UpstreamError` subclasses for upstream failures, never `HTTPException`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
"""One embedding, 1-D float32, L2-normalised."""
Matrix = npt.NDArray[np.float32]
"""Embeddings row by row, shape (n, dimension), float32, L2-normalised."""
Priority = Literal["query", "bulk"]
"""Who waits for an embedding: a user's question ("query") or ingestion ("bulk")."""


@dataclass(frozen=True, slots=True)
class Visibility:
    """What one caller's retrieval may see, computed per request (never cached in a token):

    * `owner_id`: the user whose private documents are visible (None: no private documents);
    * `collection_ids`: the collections whose documents are visible;
    * `include_shared`: whether the admin-shared documents are visible.

    Every store applies it inside its query (the local store's blocks, Pinecone's metadata
    filter, the lexical index's WHERE clause), never by filtering results afterwards.
    """

    owner_id: int | None = None
    collection_ids: frozenset[int] = frozenset()
    include_shared: bool = False

    @classmethod
    def of_user(cls, user_id: int, collection_ids: Iterable[int] = ()) -> Visibility:
        """Everything a user may see: their private documents, their collections', shared."""
        return cls(owner_id=user_id, collection_ids=frozenset(collection_ids), include_shared=True)

    @classmethod
    def of_collections(cls, collection_ids: Iterable[int]) -> Visibility:
        """The documents of these collections alone (no private, no shared documents)."""
        return cls(collection_ids=frozenset(collection_ids))

    @property
    def nothing(self) -> bool:
        """True when no document can match: stores answer [] without a query."""
        return self.owner_id is None and not self.collection_ids and not self.include_shared

    def admits(self, owner_id: int | None, collection_id: int | None) -> bool:
        """The rule itself, for one chunk's `ChunkRecord.owner_id` and `collection_id`."""
        if collection_id is not None:
            return collection_id in self.collection_ids
        if owner_id is None:
            return self.include_shared
        return owner_id == self.owner_id


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk of a document with its embedding, as stored in a vector store.

    Exactly one of three kinds: private (`owner_id` set: the user the document belongs to),
    in a collection (`collection_id` set, `owner_id` None: visible to the collection's members
    whoever uploaded it), or shared (both None: every user's questions may retrieve it). A
    document's kind is fixed for its life, so membership changes never touch a vector.
    `text` is the chunk as shown to users; `heading` is the section it belongs to (markdown),
    indexed with the title but not part of `text`.
    """

    id: str
    document_id: int
    owner_id: int | None
    title: str
    text: str
    vector: Vector
    heading: str = ""
    collection_id: int | None = None


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A retrieved chunk; `score` is the cosine similarity to the question (higher is closer)."""

    id: str
    document_id: int
    title: str
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """The tokens of one LLM call (or of a turn's calls summed). `estimated` when counted
    with `app.rag.text.count_tokens` because the LLM reported nothing."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


UsageSink = Callable[[TokenUsage], None]
"""Where the tokens of an LLM call are reported."""


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What a generator answers: the question, the numbered context and the rendered prompt.

    `contexts[i]` is cited as `[i + 1]`. `grounded` is False when no chunk was relevant and the
    settings allow a general-knowledge answer.
    """

    question: str
    contexts: Sequence[ScoredChunk]
    messages: Sequence[ChatTurn]
    grounded: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    # Where a generator reports the LLM's own `usage` (set by the pipeline for a metered turn).
    on_usage: Callable[[TokenUsage], None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Source:
    document_id: int
    title: str
    chunk_id: str
    score: float
    snippet: str


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    sources: list[Source] = field(default_factory=list)
    grounded: bool = True


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of a fixed dimension."""

    @property
    def dimension(self) -> int: ...

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        """Embed `texts` (batched as the backend sees fit); shape (len(texts), dimension).

        A backend with a queue of its own serves "query" calls before "bulk" ones (ingestion);
        remote backends may ignore it."""
        ...

    async def aclose(self) -> None: ...


class VectorStore(Protocol):
    """Stores chunk vectors and finds the closest ones visible to a user."""

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        """Insert or replace records by id (batched by the backend)."""
        ...

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        """The `top_k` closest chunks among the documents `visibility` admits, best first.

        The visibility rule is applied inside the store's query (metadata filter), never after.
        """
        ...

    async def delete(self, ids: Sequence[str]) -> None:
        """Remove records by id; unknown ids are ignored."""
        ...

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        """Remove every record of these documents, however many chunks each had."""
        ...

    async def remove_orphans(self) -> int:
        """Remove records whose document no longer exists, where the store can find them
        cheaply (at start-up, after a crash); returns how many. A store that cannot relies on
        the document being deleted last and on a query-time check that drops such records."""
        ...

    async def aclose(self) -> None: ...


class ForwardingStore:
    """A `VectorStore` that hands every call to `inner`: the base of store wrappers, which
    override only the calls they change (the live-documents filter, re-ranking)."""

    def __init__(self, inner: VectorStore) -> None:
        self.inner = inner

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        await self.inner.upsert(records)

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        return await self.inner.query(vector, top_k=top_k, visibility=visibility)

    async def delete(self, ids: Sequence[str]) -> None:
        await self.inner.delete(ids)

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        await self.inner.delete_documents(document_ids)

    async def remove_orphans(self) -> int:
        return await self.inner.remove_orphans()

    async def aclose(self) -> None:
        await self.inner.aclose()


@runtime_checkable
class TextSearch(Protocol):
    """A store that also ranks by the question's words (app.rag.hybrid.HybridStore)."""

    async def search(
        self, question: str, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        """Like `VectorStore.query`, with the question's text beside its vector."""
        ...


async def search_store(
    store: VectorStore, question: str, vector: Vector, *, top_k: int, visibility: Visibility
) -> list[ScoredChunk]:
    """The pipeline's retrieval call: by text and vector when the store can, else by vector."""
    if visibility.nothing:
        return []
    if isinstance(store, TextSearch):
        return await store.search(question, vector, top_k=top_k, visibility=visibility)
    return await store.query(vector, top_k=top_k, visibility=visibility)


class Generator(Protocol):
    """Writes the answer to a question from the prompt and its context."""

    async def generate(self, request: GenerationRequest) -> str: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """The answer as text deltas, in order."""
        ...

    async def aclose(self) -> None: ...


class TokenMeter(Protocol):
    """Meters the LLM call of one turn (app.usage implements it)."""

    async def admit(self, request: GenerationRequest) -> None:
        """Called just before the LLM call; raises to refuse it (a spent budget)."""
        ...

    def report(self, usage: TokenUsage) -> None:
        """The LLM's own count for the call, when it sent one."""
        ...

    def add(self, usage: TokenUsage) -> None:
        """Another LLM call the turn made before its answer (condensing a follow-up)."""
        ...
