"""Prometheus metrics, served at `GET /metrics`.

Per process by default. With several workers (`chatbot serve --workers N`), set
`PROMETHEUS_MULTIPROC_DIR` to an empty directory writable by every worker *before* the
processes start: prometheus_client then keeps the values in files there and every worker's
`/metrics` answers for all of them (the client's multiprocess mode).

Other modules record through the objects below, one line per hook, e.g.
`metrics.CHAT_TURNS.labels(mode="stream").inc()`; timings use `timed(...)`.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.routing import Match, Mount, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import UpstreamError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "<unmatched>"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Latency buckets from a cached health check (ms) to a long streamed answer (a minute).
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "http_requests",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "Time from the request to the end of its response body, by route template",
    ["method", "route"],
    buckets=_SECONDS,
)
CHAT_TURNS = Counter("chat_turns", "Chat turns answered or started, by mode", ["mode"])
RETRIEVAL_SECONDS = Histogram(
    "rag_retrieval_duration_seconds",
    "Embedding the question and querying the store, by vector store backend",
    ["backend"],
    buckets=_SECONDS,
)
GENERATION_SECONDS = Histogram(
    "rag_generation_duration_seconds",
    "Generating an answer (a streamed one until its last delta), by generator backend",
    ["backend"],
    buckets=_SECONDS,
)
UPSTREAM_ERRORS = Counter(
    "upstream_errors", "AI backend failures by stage and kind (error code)", ["stage", "kind"]
)
TOKENS_STREAMED = Counter(
    "tokens_streamed", "Deltas (tokens) of streamed answers, by generator backend", ["backend"]
)
DOCUMENTS_INGESTED = Counter(
    "documents_ingested", "Documents whose indexing ended, by outcome", ["outcome"]
)
CHUNKS_INGESTED = Counter("chunks_ingested", "Chunks embedded and written to the store")
INGESTION_QUEUE = Gauge(
    "ingestion_queue_depth",
    "Background ingestion tasks pending or running",
    multiprocess_mode="livesum",
)
RATE_LIMITED = Counter("rate_limit_rejections", "Requests refused with 429, by limit", ["limit"])
FEEDBACK = Counter(
    "answer_feedback", "Ratings given to answers (a changed rating counts again)", ["rating"]
)
LLM_TOKENS = Counter(
    "llm_tokens",
    "Tokens of answered turns by kind (prompt, completion) and source (reported, estimated)",
    ["kind", "source"],
)
TOKEN_BUDGET_REFUSALS = Counter(
    "token_budget_refusals", "Turns refused because the user's daily token budget is spent"
)
RATE_LIMIT_STORAGE_ERRORS = Counter(
    "rate_limit_storage_errors", "Rate limit checks skipped because the store failed"
)
RETENTION_DELETED = Counter(
    "retention_rows_deleted", "Rows removed by the retention job, by table", ["table"]
)
DATABASE_BREAKER_OPEN = Gauge(
    "database_breaker_open",
    "1 while the database circuit breaker refuses connects (in any worker), else 0",
    multiprocess_mode="livemax",
)
DATABASE_BREAKER_OPENED = Counter(
    "database_breaker_opened", "Times the database circuit breaker opened"
)
DATABASE_BREAKER_REJECTED = Counter(
    "database_breaker_rejections", "Connects refused at once (503) by the open breaker"
)
ORPHAN_VECTORS_REMOVED = Counter(
    "orphan_vectors_removed",
    "Vectors removed from the external vector store because their document no longer exists",
)
ORPHAN_SWEEP_PAGES = Counter(
    "orphan_sweep_pages", "Pages of vector ids the orphan sweep has checked"
)
ACCOUNT_DELETIONS_RESUMED = Counter(
    "account_deletions_resumed", "Account deletions a crash interrupted, finished later"
)


def backend_name(component: object) -> str:
    """A backend's label: its `name` attribute, else its class name."""
    name = getattr(component, "name", None)
    return name if isinstance(name, str) and name else type(component).__name__


@contextmanager
def timed(histogram: Histogram, stage: str, backend: str) -> Iterator[None]:
    """Observe the block's duration under `backend`; count an upstream failure it raises."""
    started = time.perf_counter()
    try:
        yield
    except UpstreamError as exc:
        UPSTREAM_ERRORS.labels(stage=stage, kind=exc.code).inc()
        raise
    finally:
        histogram.labels(backend=backend).observe(time.perf_counter() - started)


def retrieval(store: object) -> AbstractContextManager[None]:
    """Times a retrieval (question embedding and store query) by the store's backend."""
    return timed(RETRIEVAL_SECONDS, "retrieval", backend_name(store))


def generation(generator: object) -> AbstractContextManager[None]:
    return timed(GENERATION_SECONDS, "generation", backend_name(generator))


async def observed_stream(deltas: AsyncIterator[str], generator: object) -> AsyncIterator[str]:
    """`deltas` as they come, timed from the first read to the last and counted as tokens."""
    tokens = TOKENS_STREAMED.labels(backend=backend_name(generator))
    with generation(generator):
        async for delta in deltas:
            tokens.inc()
            yield delta


def ingestion_failed(exc: BaseException) -> None:
    """A document's indexing failed; an AI backend's failure counts as an upstream error too."""
    DOCUMENTS_INGESTED.labels(outcome="failed").inc()
    if isinstance(exc, UpstreamError):
        UPSTREAM_ERRORS.labels(stage="ingestion", kind=exc.code).inc()


def ingestion_task_done(_: object) -> None:
    """A done-callback for background ingestion tasks (their start is `INGESTION_QUEUE.inc()`)."""
    INGESTION_QUEUE.dec()


def mark_process_dead() -> None:
    """At shutdown in multiprocess mode: drop this process's live gauges from the sum."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def render() -> bytes:
    """The exposition text: every worker's values in multiprocess mode, else this process's."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


class RequestMetricsMiddleware:
    """Counts and times every HTTP request by its route template (`/api/documents/{id}`, never
    the raw path, so the label set stays bounded)."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    def route_of(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        # Answered before routing (a body limit's 413, a CORS preflight): match it ourselves.
        for candidate in self.router.routes:
            if candidate.matches(scope)[0] is not Match.NONE:
                if isinstance(candidate, Mount):
                    return candidate.path + "/{path}"
                return str(getattr(candidate, "path", UNMATCHED))
        return UNMATCHED

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            method, route = scope["method"], self.route_of(scope)
            REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            REQUEST_SECONDS.labels(method=method, route=route).observe(
                time.perf_counter() - started
            )


def prepare_multiprocess_dir() -> None:
    """Before the workers start (`chatbot serve`): create PROMETHEUS_MULTIPROC_DIR, and empty
    it of a previous run's files, whose values would otherwise be summed in forever."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    mine = f"_{os.getpid()}.db"  # this process's own files are open: `--workers 1` serves here
    for stale in path.glob("*.db"):
        if not stale.name.endswith(mine):
            stale.unlink(missing_ok=True)
