"""Every console command the way users run it: the installed `chatbot` script, in a fresh
process, on a fresh database, from a folder that holds nothing of the project.

In-process CLI tests hid a crash here (`chatbot ingest` on a fresh install: a foreign key to a
table nothing had imported), because the test suite had imported every model already."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_SECRET
from tests.fakes.pinecone import FakePinecone
from tests.fakes.server import serve

CHATBOT = Path(sys.executable).with_name("chatbot")
ADMIN_PASSWORD = "admin passphrase 1"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path


def chatbot(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HUGGINGFACE", "PINECONE", "CHAT_", "LOG_LEVEL", "DATABASE_URL"))
    }
    return subprocess.run(  # noqa: S603 - our own installed script
        [str(CHATBOT), *args],
        cwd=workdir,
        env={
            **base,
            "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'chatbot.db'}",
            "SECRET_KEY": TEST_SECRET,
            "ENVIRONMENT": "test",
            "PASSWORD_HASH_TIME_COST": "1",
            "PASSWORD_HASH_MEMORY_KIB": "8",
            "CHATBOT_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **env,
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def rows(workdir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(workdir / "chatbot.db") as conn:
        return conn.execute(sql).fetchall()


def test_migrate_on_fresh_database_creates_schema(workdir: Path) -> None:
    result = chatbot(workdir, "migrate")
    assert result.returncode == 0, result.stderr
    tables = {name for (name,) in rows(workdir, "SELECT name FROM sqlite_master")}
    assert {"users", "documents", "vector_entries", "chat_messages"} <= tables
    # Ids are never reused: the migrated tables say AUTOINCREMENT.
    for table in ("users", "documents", "chat_messages", "vector_entries"):
        ((sql,),) = rows(workdir, f"SELECT sql FROM sqlite_master WHERE name = '{table}'")  # noqa: S608
        assert "AUTOINCREMENT" in str(sql), table


def test_ingest_on_fresh_install_adds_shared_documents(workdir: Path) -> None:
    """Reproduced: NoReferencedTableError on every fresh install."""
    docs = workdir / "docs"
    docs.mkdir()
    (docs / "fact.txt").write_text("The teal cabinet code is TEAL-4242.")
    (docs / "notes.md").write_text("# Notes\n\nThe orange door opens at nine.")
    assert chatbot(workdir, "migrate").returncode == 0

    result = chatbot(workdir, "ingest", str(docs))

    assert result.returncode == 0, result.stderr
    assert "added 2, unchanged 0, failed 0" in result.stdout
    assert rows(workdir, "SELECT COUNT(*) FROM documents WHERE shared AND status = 'ready'") == [
        (2,)
    ]
    assert rows(workdir, "SELECT COUNT(*) FROM vector_entries") == [(2,)]
    again = chatbot(workdir, "ingest", str(docs))
    assert "added 0, unchanged 2, failed 0" in again.stdout


def test_ingest_into_collection_adds_its_documents_not_shared(workdir: Path) -> None:
    docs = workdir / "docs"
    docs.mkdir()
    (docs / "runbook.md").write_text("# Runbook\n\nRestart the teal service with TEAL-4242.")
    assert chatbot(workdir, "migrate").returncode == 0
    with sqlite3.connect(workdir / "chatbot.db") as conn:  # no command creates a collection
        conn.execute(
            "INSERT INTO collections (name, deleting, created_at, updated_at) "
            "VALUES ('Runbooks', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )
    ((collection_id,),) = rows(workdir, "SELECT id FROM collections")

    result = chatbot(workdir, "ingest", "--collection", str(collection_id), str(docs))

    assert result.returncode == 0, result.stderr
    assert "added 1, unchanged 0, failed 0" in result.stdout
    assert rows(workdir, "SELECT collection_id, shared, owner_id, status FROM documents") == [
        (collection_id, 0, None, "ready")
    ]
    assert rows(workdir, "SELECT COUNT(*) FROM vector_entries") == [(1,)]
    again = chatbot(workdir, "ingest", "--collection", str(collection_id), str(docs))
    assert "added 0, unchanged 1, failed 0" in again.stdout


@pytest.mark.parametrize("collection", ["7", "0", "x1"])
def test_ingest_into_missing_or_bad_collection_exits_2_and_adds_nothing(
    workdir: Path, collection: str
) -> None:
    (workdir / "fact.txt").write_text("The teal cabinet code is TEAL-4242.")
    assert chatbot(workdir, "migrate").returncode == 0

    result = chatbot(workdir, "ingest", "--collection", collection, str(workdir / "fact.txt"))

    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert ("collection 7 not found" if collection == "7" else "not a collection id") in (
        result.stderr
    )
    assert rows(workdir, "SELECT COUNT(*) FROM documents") == [(0,)]


def test_cleanup_on_fresh_database_reports_zero(workdir: Path) -> None:
    assert chatbot(workdir, "migrate").returncode == 0
    result = chatbot(workdir, "cleanup")
    assert result.returncode == 0, result.stderr
    assert "deleted 0 chat messages" in result.stdout


def test_create_admin_then_deactivate(workdir: Path) -> None:
    assert chatbot(workdir, "migrate").returncode == 0
    created = chatbot(workdir, "create-admin", "--email", "Root@Example.com")
    assert created.returncode == 0, created.stderr
    assert rows(workdir, "SELECT email, is_admin, is_active FROM users") == [
        ("root@example.com", 1, 1)
    ]
    deactivated = chatbot(workdir, "deactivate", "--email", "root@example.com")
    assert deactivated.returncode == 0, deactivated.stderr
    assert rows(workdir, "SELECT is_active FROM users") == [(0,)]
    missing = chatbot(workdir, "deactivate", "--email", "nobody@example.com")
    assert missing.returncode == 1


def test_pinecone_init_against_the_wire_fake(workdir: Path) -> None:
    fake = FakePinecone(api_key="pc-key")
    with serve(fake.app) as url:
        result = chatbot(
            workdir,
            "pinecone-init",
            PINECONE_API_KEY="pc-key",
            PINECONE_CONTROLLER_HOST=url,
            EMBEDDING_BACKEND="local",
        )
    assert result.returncode == 0, result.stderr
    assert "index chatbot-index created" in result.stdout
    assert fake.indexes["chatbot-index"].dimension == 384


def test_bad_configuration_is_one_line_not_a_traceback(workdir: Path) -> None:
    result = chatbot(workdir, "migrate", SECRET_KEY="too-short")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "configuration error: SECRET_KEY" in result.stderr
