"""GET /metrics: request counts and latencies by route template, chat turns, retrieval and
generation latency by backend, upstream errors, streamed tokens, ingestion, queue depth,
rate-limit rejections, retention; access control; multiprocess mode across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from app.chat.models import ChatMessage
from app.chat.retention import JOB_NAME
from app.core import metrics
from app.core.db import utcnow
from app.core.errors import UpstreamTimeout, UpstreamUnavailable
from app.rag.protocols import GenerationRequest
from tests.ops.conftest import AppClientFactory, PeerAppFactory, bearer, signup_login

DOCUMENT = {
    "title": "Garden",
    "content": "The shed in the garden is painted green. The key hangs by the door.",
}


async def scrape(client: httpx.AsyncClient, **headers: str) -> str:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels (0 when absent, as Prometheus reads it)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def test_requests_counted_by_route_template_and_status(app_client: AppClientFactory) -> None:
    async with app_client() as client:
        headers = bearer((await signup_login(client))["access"])
        document = (await client.post("/api/documents/", json=DOCUMENT, headers=headers)).json()
        before = await scrape(client)
        for _ in range(2):
            assert (
                await client.get(f"/api/documents/{document['id']}/", headers=headers)
            ).status_code == 200
        assert (await client.get("/api/documents/999999/", headers=headers)).status_code == 404
        assert (await client.get("/no/such/path/1")).status_code == 404
        assert (await client.get("/no/such/path/2")).status_code == 404
        after = await scrape(client)

    route = "/api/documents/{document_id}/"
    labels = {"method": "GET", "route": route}
    assert (
        value(after, "http_requests_total", **labels, status="200")
        - value(before, "http_requests_total", **labels, status="200")
        == 2
    )
    assert (
        value(after, "http_requests_total", **labels, status="404")
        - value(before, "http_requests_total", **labels, status="404")
        == 1
    )
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert (
        value(after, "http_requests_total", **unmatched)
        - value(before, "http_requests_total", **unmatched)
        == 2
    )
    assert (
        value(after, "http_request_duration_seconds_count", **labels)
        - value(before, "http_request_duration_seconds_count", **labels)
        == 3
    )
    assert f'document_id="{document["id"]}"' not in after
    assert "/no/such/path" not in after  # raw paths never become labels


async def test_chat_turns_and_backend_latencies_recorded(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        store = metrics.backend_name(running.state["pipeline"].store)
        generator = metrics.backend_name(running.state["pipeline"].generator)
        headers = bearer((await signup_login(client))["access"])
        assert (await client.post("/api/documents/", json=DOCUMENT, headers=headers)).is_success
        before = await scrape(client)
        chat = await client.post(
            "/api/chat/", json={"message": "What colour is the shed?"}, headers=headers
        )
        assert chat.status_code == 200
        async with client.stream(
            "POST", "/api/chat/stream/", json={"message": "Where is the key?"}, headers=headers
        ) as stream:
            events = [line async for line in stream.aiter_lines() if line.startswith("event:")]
        after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("chat_turns_total", mode="answer") == 1
    assert delta("chat_turns_total", mode="stream") == 1
    assert generator == "ExtractiveGenerator"
    assert delta("rag_retrieval_duration_seconds_count", backend=store) == 2
    assert delta("rag_generation_duration_seconds_count", backend=generator) == 2
    deltas = events.count("event: delta")
    assert deltas >= 1
    assert delta("tokens_streamed_total", backend=generator) == deltas


class _Unavailable:
    """A generator whose upstream is down."""

    async def generate(self, request: GenerationRequest) -> str:
        raise UpstreamUnavailable(retry_after=3)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        raise UpstreamUnavailable(retry_after=3)
        yield ""  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None


async def test_upstream_error_counted_by_stage_and_kind(peer_app: PeerAppFactory) -> None:
    async with peer_app() as running, running.client() as client:
        headers = bearer((await signup_login(client))["access"])
        assert (await client.post("/api/documents/", json=DOCUMENT, headers=headers)).is_success
        running.state["pipeline"].generator = _Unavailable()
        before = await scrape(client)
        failed = await client.post(
            "/api/chat/", json={"message": "What colour is the shed?"}, headers=headers
        )
        after = await scrape(client)

    assert failed.status_code == 503
    labels = {"stage": "generation", "kind": "upstream_unavailable"}
    assert (
        value(after, "upstream_errors_total", **labels)
        - value(before, "upstream_errors_total", **labels)
        == 1
    )
    assert value(after, "rag_generation_duration_seconds_count", backend="_Unavailable") >= 1


async def test_background_ingestion_counted_and_queue_drains(peer_app: PeerAppFactory) -> None:
    async with peer_app(ingest_inline_max_chunks=0) as running, running.client() as client:
        headers = bearer((await signup_login(client))["access"])
        before = await scrape(client)
        created = await client.post("/api/documents/", json=DOCUMENT, headers=headers)
        assert created.status_code == 201
        assert created.json()["status"] == "processing"
        await running.state["documents"].wait_idle()
        after = await scrape(client)
        document = await client.get(f"/api/documents/{created.json()['id']}/", headers=headers)

    chunks = document.json()["chunks"]
    assert chunks >= 1
    assert (
        value(after, "documents_ingested_total", outcome="ready")
        - value(before, "documents_ingested_total", outcome="ready")
        == 1
    )
    assert value(after, "chunks_ingested_total") - value(before, "chunks_ingested_total") == chunks
    assert value(after, "ingestion_queue_depth") == value(before, "ingestion_queue_depth")


async def test_rate_limit_rejections_counted_by_limit(app_client: AppClientFactory) -> None:
    async with app_client(
        rate_limit_enabled=True, rate_limit_login_per_account_per_minute=1
    ) as client:
        before = await scrape(client)
        wrong = {"email": "ada@example.com", "password": "wrong password"}
        statuses = [(await client.post("/api/login/", json=wrong)).status_code for _ in range(3)]
        after = await scrape(client)

    assert statuses == [401, 429, 429]
    assert (
        value(after, "rate_limit_rejections_total", limit="login-account")
        - value(before, "rate_limit_rejections_total", limit="login-account")
        == 2
    )


async def test_retention_job_deleted_rows_counted(peer_app: PeerAppFactory) -> None:
    async with peer_app(scheduler_enabled=True) as running, running.client() as client:
        headers = bearer((await signup_login(client))["access"])
        for text in ("first?", "second?"):
            assert (
                await client.post("/api/chat/", json={"message": text}, headers=headers)
            ).is_success
        async with running.state["sessions"].begin() as session:
            await session.execute(
                update(ChatMessage).values(timestamp=utcnow() - timedelta(days=365))
            )
        before = await scrape(client)
        scheduler = running.state["scheduler"]
        assert scheduler is not None
        # The start-up catch-up run (10 s later) is dropped; the periodic job runs now.
        if scheduler.get_job(f"{JOB_NAME}:catch-up") is not None:
            scheduler.remove_job(f"{JOB_NAME}:catch-up")
        await scheduler.get_job(JOB_NAME).func()
        after = await scrape(client)

    deleted = value(after, "retention_rows_deleted_total", table="chat_messages") - value(
        before, "retention_rows_deleted_total", table="chat_messages"
    )
    assert deleted == 4  # two questions, two answers


async def test_metrics_disabled_404(app_client: AppClientFactory) -> None:
    async with app_client(metrics_enabled=False) as client:
        response = await client.get("/metrics")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_metrics_token_required_when_set(app_client: AppClientFactory) -> None:
    token = "scrape-token-0123456789"
    async with app_client(metrics_token=token) as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers=bearer("not-the-token"))
        right = await client.get("/metrics", headers=bearer(token))

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "http_requests_total" in right.text


WORKER = """
import os, sys
from app.core import metrics
metrics.CHAT_TURNS.labels(mode="answer").inc(int(sys.argv[1]))
metrics.INGESTION_QUEUE.inc(int(sys.argv[1]))
if sys.argv[2] == "exit":
    metrics.mark_process_dead()
"""

SCRAPER = """
import json
from prometheus_client.parser import text_string_to_metric_families
from app.core import metrics
values = {
    s.name: s.value
    for family in text_string_to_metric_families(metrics.render().decode())
    for s in family.samples
    if s.name in ("chat_turns_total", "ingestion_queue_depth")
}
print(json.dumps(values))
"""


def _python(code: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.stdout


def test_multiprocess_mode_sums_workers_and_drops_dead_gauges(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _python(WORKER, "2", "stay", env=env)  # a worker that is still alive: never marked dead
    _python(WORKER, "3", "exit", env=env)  # a worker that shut down

    scraped = json.loads(_python(SCRAPER, env=env))

    assert scraped["chat_turns_total"] == 5  # counters keep what dead workers counted
    assert scraped["ingestion_queue_depth"] == 2  # live gauges: only the live worker's


async def test_ingestion_upstream_failure_counted_as_failed_and_upstream_error(
    peer_app: PeerAppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def timed_out(*_: object, **__: object) -> None:
        raise UpstreamTimeout()

    async with peer_app() as running, running.client() as client:
        headers = bearer((await signup_login(client))["access"])
        monkeypatch.setattr(running.state["documents"].embedder, "embed", timed_out)
        before = await scrape(client)
        created = await client.post("/api/documents/", json=DOCUMENT, headers=headers)
        after = await scrape(client)

    assert created.json()["status"] == "failed"
    labels = {"stage": "ingestion", "kind": "upstream_timeout"}
    assert (
        value(after, "upstream_errors_total", **labels)
        - value(before, "upstream_errors_total", **labels)
        == 1
    )
    assert (
        value(after, "documents_ingested_total", outcome="failed")
        - value(before, "documents_ingested_total", outcome="failed")
        == 1
    )
