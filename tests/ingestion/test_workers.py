"""Ingestion on the task queue: two real `chatbot worker` processes against the real Redis on
127.0.0.1:6379; one is killed with SIGKILL mid-document and the other finishes it, resuming
from the last finished batch."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET

CHATBOT = Path(sys.executable).with_name("chatbot")
REDIS_DB = 13  # a database of our own on the shared server, flushed first
BROKER = f"redis://127.0.0.1:6379/{REDIS_DB}"
TEXT = " ".join(f"Fact {n}: the harbour crane number {n} lifts {n} tonnes." for n in range(500))


def _redis_up() -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    if not _redis_up():
        pytest.skip("no Redis on 127.0.0.1:6379 (.ci/run starts one)")
    subprocess.run(  # noqa: S603
        ["redis-cli", "-n", str(REDIS_DB), "FLUSHDB"],  # noqa: S607
        check=True,
        capture_output=True,
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HUGGINGFACE", "PINECONE"))}
    return {
        **base,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'queue.db'}",
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "test",
        "TASK_BROKER_URL": BROKER,
        "CHUNK_TOKENS": "32",
        "CHUNK_OVERLAP_TOKENS": "0",
        "INGEST_INLINE_MAX_CHUNKS": "0",
        # Short leases and slices, so a dead worker's document is taken over within seconds.
        "INGEST_CLAIM_SECONDS": "3",
        "INGEST_SWEEP_SECONDS": "1",
        "TASK_JOB_SLICE_SECONDS": "2",
        "TASK_JOB_TIMEOUT_SECONDS": "20",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    assert (
        subprocess.run(  # noqa: S603
            [str(CHATBOT), "migrate"], env=env, cwd=tmp_path, capture_output=True, check=False
        ).returncode
        == 0
    )
    started = []
    for n in range(2):
        with (tmp_path / f"worker{n}.log").open("wb") as log:  # the child keeps its own copy
            started.append(
                subprocess.Popen(  # noqa: S603
                    [str(CHATBOT), "worker"], env=env, cwd=tmp_path, stdout=log, stderr=log
                )
            )
    try:
        deadline = time.monotonic() + 120
        while not all("waiting for ingestion jobs" in _log(tmp_path, n) for n in range(2)):
            assert time.monotonic() < deadline, _log(tmp_path, 0) + _log(tmp_path, 1)
            time.sleep(0.2)
        yield started
    finally:
        for process in started:
            if process.poll() is None:
                process.terminate()
        for process in started:
            process.wait(timeout=30)


def _log(tmp_path: Path, n: int) -> str:
    path = tmp_path / f"worker{n}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _row(tmp_path: Path, sql: str) -> tuple[object, ...]:
    with sqlite3.connect(tmp_path / "queue.db", timeout=30) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None
    return tuple(row)


def test_killed_worker_mid_document_is_finished_by_the_other(
    env: dict[str, str], workers: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    (tmp_path / "cranes.txt").write_text(TEXT)
    # The API's enqueue path, run as a user would: the document is queued, not indexed here.
    added = subprocess.run(  # noqa: S603
        [
            str(CHATBOT),
            "ingest",
            "--background",
            str(tmp_path / "cranes.txt"),
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert added.returncode == 0, added.stderr
    (document_id, chunks) = _row(tmp_path, "SELECT id, chunks FROM documents")  # the only one
    assert isinstance(chunks, int)
    assert chunks > 3 * 64

    deadline = time.monotonic() + 120
    while True:  # wait until one worker holds it with some batches done
        indexed, holder = _row(tmp_path, "SELECT indexed_chunks, claimed_by FROM documents")
        if holder and isinstance(indexed, int) and indexed >= 64:
            break
        assert time.monotonic() < deadline, "no worker started the document"
        time.sleep(0.05)
    victim = next(p for p in workers if f":{p.pid}:" in str(holder))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    (killed_at,) = _row(tmp_path, "SELECT indexed_chunks FROM documents")

    deadline = time.monotonic() + 180
    while _row(tmp_path, "SELECT status FROM documents")[0] != "ready":
        assert time.monotonic() < deadline, _log(tmp_path, 0) + _log(tmp_path, 1)
        time.sleep(0.2)

    assert _row(tmp_path, "SELECT COUNT(*), COUNT(DISTINCT chunk_id) FROM vector_entries") == (
        chunks,
        chunks,
    )
    survivor = 1 - workers.index(victim)
    resumed = [
        int(line.rsplit(" at chunk ", 1)[1].split()[0])
        for line in _log(tmp_path, survivor).splitlines()
        if f"resuming document {document_id} at chunk" in line
    ]
    assert resumed, _log(tmp_path, survivor)
    assert isinstance(killed_at, int)
    assert max(resumed) >= killed_at  # taken over from the last finished batch, not from 0
