"""`chatbot serve --workers 2`, as deployed: the two workers share the rate-limit counts
through Redis, and either worker's /metrics answers for both (PROMETHEUS_MULTIPROC_DIR).
Remote backends point at the Hugging Face wire fake, so no worker loads a model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TEST_SECRET
from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.server import serve

STARTUP_SECONDS = 120
ATTEMPTS = 12
MAX_ATTEMPTS = 60
PER_ACCOUNT = 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def two_workers(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> Iterator[tuple[str, Path, Path]]:
    fake = FakeHuggingFace()
    metrics_dir = tmp_path / "metrics"
    port = _free_port()
    log_path = tmp_path / "server.log"
    with serve(fake.app) as upstream:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path),
            "HF_HUB_OFFLINE": "1",
            "ENVIRONMENT": "test",
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "8",
            "SCHEDULER_ENABLED": "false",
            "EMBEDDING_BACKEND": "huggingface",
            "EMBEDDING_URL": f"{upstream}/embed",
            "VECTOR_STORE": "local",
            "LLM_BACKEND": "huggingface",
            "LLM_BASE_URL": f"{upstream}/v1",
            "RATE_LIMIT_STORAGE_URL": redis_url,
            "RATE_LIMIT_KEY_PREFIX": key_prefix,
            "RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE": str(PER_ACCOUNT),
            "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
            "LOG_FORMAT": "json",
        }
        metrics_dir.mkdir()
        (metrics_dir / "counter_999999.db").write_bytes(b"stale")  # a previous run's file
        script = Path(sys.executable).parent / "chatbot"
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own console script
                [str(script), "serve", "--port", str(port), "--workers", "2"],
                cwd=tmp_path,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + STARTUP_SECONDS
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chatbot serve did not start:\n{log_path.read_text()}")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)  # polling start-up, not timing a behaviour
            yield url, metrics_dir, log_path
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _login_counts_by_process(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """Each process's own count of /api/login/ requests: its file, collected alone."""
    counts: dict[str, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        alone = scratch / path.stem
        alone.mkdir()
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        total = sum(
            sample.value
            for family in text_string_to_metric_families(generate_latest(registry).decode())
            for sample in family.samples
            if sample.name == "http_requests_total" and sample.labels["route"] == "/api/login/"
        )
        if total:
            counts[path.stem] = total
    return counts


def test_two_workers_share_limits_in_redis_and_report_metrics_together(
    two_workers: tuple[str, Path, Path], tmp_path: Path
) -> None:
    url, metrics_dir, _ = two_workers
    (tmp_path / "alone").mkdir()
    assert not (metrics_dir / "counter_999999.db").exists()
    statuses: list[int] = []
    per_process: dict[str, float] = {}
    # A new connection each time, so the kernel spreads them over both workers; on a loaded
    # machine one worker can take a dozen in a row, so go on (bounded) until both answered.
    while len(statuses) < ATTEMPTS or (len(per_process) < 2 and len(statuses) < MAX_ATTEMPTS):
        with httpx.Client(base_url=url, timeout=30) as client:
            response = client.post(
                "/api/login/", json={"email": "ada@example.com", "password": "wrong password"}
            )
        statuses.append(response.status_code)
        if len(statuses) >= ATTEMPTS:
            scratch = tmp_path / f"alone-{len(statuses)}"
            scratch.mkdir()
            per_process = _login_counts_by_process(metrics_dir, scratch)
    attempts = len(statuses)
    scrapes = []
    for _ in range(4):
        with httpx.Client(base_url=url, timeout=30) as client:
            scrapes.append(client.get("/metrics").text)

    assert statuses == [401] * PER_ACCOUNT + [429] * (attempts - PER_ACCOUNT)
    per_process = _login_counts_by_process(metrics_dir, tmp_path / "alone")
    assert len(per_process) == 2, per_process  # both workers answered some
    assert sum(per_process.values()) == attempts
    for text in scrapes:  # whichever worker answered the scrape: the total of both
        totals = {
            sample.labels["status"]: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "http_requests_total" and sample.labels["route"] == "/api/login/"
        }
        assert totals == {"401": PER_ACCOUNT, "429": attempts - PER_ACCOUNT}


def test_serve_log_format_json_every_line_json_with_request_ids(
    two_workers: tuple[str, Path, Path],
) -> None:
    url, _, log_path = two_workers
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.get("/readyz", headers={"X-Request-ID": "probe-1"})
    assert response.headers["X-Request-ID"] == "probe-1"

    deadline = time.monotonic() + 10
    while "probe-1" not in log_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the access line is written as the response goes out
    entries = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    loggers = {entry["logger"] for entry in entries}
    assert {"uvicorn.error", "uvicorn.access", "app.rag.factory"} <= loggers
    access = [
        e for e in entries if e["logger"] == "uvicorn.access" and e["request_id"] == "probe-1"
    ]
    assert len(access) == 1
    assert "GET /readyz" in access[0]["message"]
