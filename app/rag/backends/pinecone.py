"""The Pinecone vector store, through the official SDK's asyncio client (REST data plane).

Each chunk is one vector whose metadata is `document_id` (int), `shared` (bool), `title`,
`text`, `owner_id` (int) for private documents only and `collection_id` (int) for a
collection's documents only: Pinecone has no null, so a shared document carries neither.
Vectors written before collections existed carry no `collection_id` and keep their meaning
(private or shared). The visibility rule is the query's metadata filter.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Final

from app.core.config import Settings
from app.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.rag.protocols import ChunkRecord, ScoredChunk, Vector, Visibility

try:
    from pinecone import (
        ApiError,
        AsyncIndex,
        ConflictError,
        DenseVectorField,
        IndexModel,
        NotFoundError,
        PineconeAsyncio,
        PineconeConnectionError,
        PineconeError,
        PineconeTimeoutError,
        PineconeTypeError,
        PineconeValueError,
        RateLimitError,
        ResponseParsingError,
        RetryConfig,
        ServiceError,
    )
    from pinecone import Vector as PineconeVector
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "VECTOR_STORE=pinecone needs the Pinecone SDK 10.x: pip install 'pinecone>=10.2' "
        "(or set VECTOR_STORE=local)"
    ) from exc

logger = logging.getLogger(__name__)

UPSERT_BATCH_SIZE: Final = 100
DELETE_BATCH_SIZE: Final = 1_000  # Pinecone's cap on ids per delete request
METRIC: Final = "cosine"
# The reserved field name the vectors API (upsert/query) addresses dense values by; a schema
# declaring only this field creates a plain vector index rather than a document index.
DENSE_FIELD: Final = "_values"
_FAILED_STATES: Final = frozenset({"InitializationFailed", "Terminating", "Disabled"})


def visibility_filter(visibility: Visibility) -> dict[str, Any]:
    """The metadata filter admitting what `visibility` admits: the owner's private chunks,
    the chunks of the listed collections, the shared chunks. Private and shared vectors carry
    no `collection_id`, and collection vectors no `owner_id` and `shared: false`, so each
    clause admits one kind only."""
    clauses: list[dict[str, Any]] = []
    if visibility.owner_id is not None:
        clauses.append({"owner_id": {"$eq": visibility.owner_id}})
    if visibility.collection_ids:
        clauses.append({"collection_id": {"$in": sorted(visibility.collection_ids)}})
    if visibility.include_shared:
        clauses.append({"shared": {"$eq": True}})
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


class PineconeVectorStore:
    """Stores chunk vectors in one namespace of a Pinecone index.

    Build it with `await PineconeVectorStore.open(settings)` and close it with `aclose()`.
    Upserts are sent in requests of `UPSERT_BATCH_SIZE` vectors, one after the other; if one
    fails, the earlier ones stay written, and since upserts replace by id, retrying the whole
    call is safe.
    """

    def __init__(
        self,
        client: PineconeAsyncio,
        index: AsyncIndex,
        *,
        namespace: str,
        api_key: str,
        deadline: float = 30.0,
    ) -> None:
        self._client = client
        self._index = index
        self._namespace = namespace
        self._api_key = api_key
        self._deadline = deadline

    @asynccontextmanager
    async def _call(self, action: str) -> AsyncIterator[None]:
        """Map SDK errors, and bound the call with its retries: they can add up to minutes."""
        try:
            async with asyncio.timeout(self._deadline):
                with _upstream_errors(action, self._api_key):
                    yield
        except TimeoutError as exc:
            raise UpstreamTimeout(f"Pinecone did not answer the {action} in time.") from exc

    @classmethod
    async def open(
        cls, settings: Settings, *, retry_config: RetryConfig | None = None
    ) -> PineconeVectorStore:
        """Connect to `settings.pinecone_index`.

        The index host is `settings.pinecone_host` when set, else one describe call on the
        control plane (`settings.pinecone_controller_host`, else Pinecone's public API).
        `retry_config` tunes the control plane's retries; the SDK's data-plane client always
        uses its default policy (3 retries with backoff on 408/429/5xx and connection errors).
        """
        api_key = _api_key(settings)
        client = _client(settings, api_key, retry_config)
        try:
            host = settings.pinecone_host or await _index_host(client, settings, api_key)
            index = await client.index(host=host)
        except BaseException:
            await client.close()
            raise
        logger.info("Pinecone index %r at %s", settings.pinecone_index, host)
        return cls(
            client,
            index,
            namespace=settings.pinecone_namespace,
            api_key=api_key,
            deadline=settings.pinecone_deadline_seconds,
        )

    async def upsert(self, records: Sequence[ChunkRecord]) -> None:
        # Our own batches rather than the SDK's `batch_size=`, which reports a failed batch in
        # its result instead of raising.
        for start in range(0, len(records), UPSERT_BATCH_SIZE):
            batch = [_to_vector(r) for r in records[start : start + UPSERT_BATCH_SIZE]]
            async with self._call("upsert"):
                await self._index.upsert(vectors=batch, namespace=self._namespace)

    async def query(
        self, vector: Vector, *, top_k: int, visibility: Visibility
    ) -> list[ScoredChunk]:
        if visibility.nothing:
            return []  # an empty `$or` would be refused
        async with self._call("query"):
            response = await self._index.query(
                vector=vector.tolist(),
                top_k=top_k,
                namespace=self._namespace,
                filter=visibility_filter(visibility),
                include_metadata=True,
            )
        chunks = [_to_chunk(match.id, match.score, match.metadata) for match in response.matches]
        chunks.sort(key=lambda chunk: chunk.score, reverse=True)
        return chunks

    async def delete(self, ids: Sequence[str]) -> None:
        for start in range(0, len(ids), DELETE_BATCH_SIZE):
            batch = list(ids[start : start + DELETE_BATCH_SIZE])
            async with self._call("delete"):
                await self._index.delete(ids=batch, namespace=self._namespace)

    async def delete_documents(self, document_ids: Sequence[int]) -> None:
        # Deletion by metadata filter: a document's chunk count can change between versions.
        for start in range(0, len(document_ids), DELETE_BATCH_SIZE):
            batch = [int(i) for i in document_ids[start : start + DELETE_BATCH_SIZE]]
            async with self._call("delete"):
                await self._index.delete(
                    filter={"document_id": {"$in": batch}}, namespace=self._namespace
                )

    async def remove_orphans(self) -> int:
        # Listing every id of a large index at each start-up costs more than it saves: the
        # document row is deleted only after its vectors, and queries drop vectors whose
        # document is gone (app.documents.live.LiveDocumentsStore); the background sweep
        # (app.documents.orphans) removes them page by page through `list_document_ids`.
        return 0

    async def list_document_ids(
        self, *, limit: int, token: str | None = None
    ) -> tuple[dict[str, int | None], str | None]:
        """One page of the namespace's vector ids (at most `limit`, Pinecone's maximum is
        100), each with its `document_id` metadata (None when missing or not an integer),
        and the token of the next page (None after the last page). Two requests: the list
        (ids only) and a fetch of those ids for their metadata."""
        async with self._call("listing"):
            page = await self._index.list_paginated(
                limit=limit, pagination_token=token, namespace=self._namespace
            )
        ids = [item.id for item in page.vectors if item.id]
        next_token = page.pagination.next if page.pagination is not None else None
        if not ids:
            return {}, next_token
        async with self._call("fetch"):
            fetched = await self._index.fetch(ids=ids, namespace=self._namespace)
        return {
            vector_id: _document_id(vector.metadata)
            for vector_id, vector in fetched.vectors.items()
        }, next_token

    async def aclose(self) -> None:
        try:
            await self._index.close()
        finally:
            await self._client.close()


async def ensure_index(
    settings: Settings,
    dimension: int,
    *,
    ready_timeout: float = 300.0,
    poll_interval: float = 5.0,
    retry_config: RetryConfig | None = None,
) -> tuple[str, bool]:
    """Create the serverless index `settings.pinecone_index` unless it exists; wait until ready.

    Returns `(host, created)`. An existing index must have `dimension` and the cosine metric.
    Raises `UpstreamTimeout` when the index is not ready within `ready_timeout` seconds.
    """
    api_key = _api_key(settings)
    name = settings.pinecone_index
    async with _client(settings, api_key, retry_config) as client:
        with _upstream_errors("index creation", api_key):
            created = False
            try:
                model = await client.indexes.describe(name)
            except NotFoundError:
                try:
                    model = await client.indexes.create(
                        name=name,
                        schema={
                            "fields": {
                                DENSE_FIELD: {
                                    "type": "dense_vector",
                                    "dimension": dimension,
                                    "metric": METRIC,
                                }
                            }
                        },
                        deployment={
                            "deployment_type": "managed",
                            "cloud": settings.pinecone_cloud,
                            "region": settings.pinecone_region,
                        },
                        timeout=-1,
                    )
                    created = True
                    logger.info("Created Pinecone index %r (dimension %d)", name, dimension)
                except ConflictError:
                    model = await client.indexes.describe(name)  # created concurrently
            _check_shape(model, dimension)
            model = await _wait_until_ready(client, model, ready_timeout, poll_interval)
    if not model.host:
        raise UpstreamError(f"Pinecone reports no host for the index {name!r}.")
    return model.host, created


def _api_key(settings: Settings) -> str:
    if settings.pinecone_api_key is None or not settings.pinecone_api_key.get_secret_value():
        raise RuntimeError("The Pinecone vector store needs PINECONE_API_KEY.")
    return settings.pinecone_api_key.get_secret_value()


def _client(settings: Settings, api_key: str, retry_config: RetryConfig | None) -> PineconeAsyncio:
    return PineconeAsyncio(
        api_key=api_key,
        host=settings.pinecone_controller_host,
        timeout=settings.pinecone_timeout_seconds,
        retry_config=retry_config,
    )


async def _index_host(client: PineconeAsyncio, settings: Settings, api_key: str) -> str:
    name = settings.pinecone_index
    with _upstream_errors("index lookup", api_key):
        try:
            model = await client.indexes.describe(name)
        except NotFoundError as exc:
            raise UpstreamError(
                f"The Pinecone index {name!r} does not exist. Create it with "
                "`chatbot pinecone-init`, or point PINECONE_INDEX at an existing index."
            ) from exc
    if not model.host:
        raise UpstreamUnavailable(
            f"The Pinecone index {name!r} has no host yet ({model.status.state}); "
            "wait until it is ready."
        )
    if not model.status.ready:
        logger.warning("Pinecone index %r is %s, not ready yet", name, model.status.state)
    return model.host


def _check_shape(model: IndexModel, dimension: int) -> None:
    dense = [f for f in model.schema.fields.values() if isinstance(f, DenseVectorField)]
    if len(dense) != 1 or dense[0].dimension != dimension or dense[0].metric != METRIC:
        found = f"{dense[0].dimension} dimensions, {dense[0].metric}" if len(dense) == 1 else "no"
        raise UpstreamError(
            f"The Pinecone index {model.name!r} exists with {found} dense vector field(s), but "
            f"the embedder needs {dimension} dimensions and the {METRIC} metric. Use another "
            "PINECONE_INDEX or delete this index."
        )


async def _wait_until_ready(
    client: PineconeAsyncio, model: IndexModel, ready_timeout: float, poll_interval: float
) -> IndexModel:
    # Not the SDK's create(timeout=...): that polls every 5 s and only after a create, while an
    # index found by describe may be initialising too.
    deadline = time.monotonic() + ready_timeout
    while not model.status.ready:
        if model.status.state in _FAILED_STATES:
            raise UpstreamError(f"The Pinecone index {model.name!r} is {model.status.state}.")
        if time.monotonic() >= deadline:
            raise UpstreamTimeout(
                f"The Pinecone index {model.name!r} was not ready in {ready_timeout:g} s."
            )
        await asyncio.sleep(poll_interval)
        model = await client.indexes.describe(model.name)
    return model


def _to_vector(record: ChunkRecord) -> PineconeVector:
    metadata: dict[str, Any] = {
        "document_id": record.document_id,
        "shared": record.owner_id is None and record.collection_id is None,
        "title": record.title,
        "text": record.text,
    }
    if record.collection_id is not None:
        metadata["collection_id"] = record.collection_id
    elif record.owner_id is not None:
        metadata["owner_id"] = record.owner_id
    return PineconeVector(id=record.id, values=record.vector.tolist(), metadata=metadata)


def _document_id(metadata: dict[str, Any] | None) -> int | None:
    # Pinecone stores every number as a float: 7 comes back as 7.0.
    value = (metadata or {}).get("document_id")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if math.isfinite(value) and float(value).is_integer() else None


def _to_chunk(vector_id: str, score: float, metadata: dict[str, Any] | None) -> ScoredChunk:
    metadata = metadata or {}
    document_id, title, text = (metadata.get(k) for k in ("document_id", "title", "text"))
    # Pinecone stores every number as a float: 7 comes back as 7.0.
    if (
        isinstance(document_id, bool)
        or not isinstance(document_id, int | float)
        or not float(document_id).is_integer()
        or not isinstance(title, str)
        or not isinstance(text, str)
        or not math.isfinite(score)
    ):
        raise UpstreamError(f"Pinecone returned the chunk {vector_id!r} without valid metadata.")
    return ScoredChunk(
        id=vector_id, document_id=int(document_id), title=title, text=text, score=float(score)
    )


@contextmanager
def _upstream_errors(action: str, api_key: str) -> Iterator[None]:
    """Turn SDK failures into `UpstreamError`s whose texts never carry the API key."""
    try:
        yield
    except (PineconeValueError, PineconeTypeError):
        raise  # rejected by the SDK before sending: a bug on our side, not an upstream failure
    except PineconeError as exc:
        logger.warning("Pinecone %s failed: %s", action, _redact(exc, api_key))
        raise _translate(exc, action) from exc


def _translate(exc: PineconeError, action: str) -> UpstreamError:
    if isinstance(exc, PineconeTimeoutError):
        return UpstreamTimeout(f"Pinecone did not answer the {action} in time.")
    if isinstance(exc, PineconeConnectionError):
        return UpstreamUnavailable(f"Pinecone could not be reached for the {action}.")
    if isinstance(exc, RateLimitError):
        return UpstreamUnavailable(
            f"Pinecone rate-limited the {action}.", retry_after=exc.retry_after
        )
    if isinstance(exc, ServiceError):
        return UpstreamUnavailable(f"Pinecone failed the {action} ({exc.status_code}).")
    if isinstance(exc, ApiError):
        if exc.status_code == 408:
            return UpstreamTimeout(f"Pinecone did not answer the {action} in time.")
        return UpstreamError(f"Pinecone rejected the {action} ({exc.status_code}).")
    if isinstance(exc, ResponseParsingError):
        return UpstreamError(f"Pinecone sent an invalid answer to the {action}.")
    return UpstreamError(f"Pinecone {action} failed ({type(exc).__name__}).")


def _redact(exc: BaseException, api_key: str) -> str:
    text = str(exc)
    return text.replace(api_key, "***") if api_key else text
