"""The `chatbot` command. Its subcommands call `asyncio.run`, so these tests are plain `def`
tests and inspect the database with a fresh `asyncio.run` of their own."""

from __future__ import annotations

import asyncio
import logging
import logging.config
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.cli import main
from app.core.db import create_engine, create_sessionmaker, utcnow
from app.documents.models import Document, DocumentStatus
from app.lifespan import build_hasher
from app.models import Base
from app.rag.lexical import FTS_SHADOW_TABLES
from tests.conftest import TEST_SECRET, make_settings
from tests.fakes.pinecone import FakePinecone
from tests.fakes.server import serve

T = TypeVar("T")
ADMIN_PASSWORD = "admin passphrase 1"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI at an empty SQLite file through the environment, as a user would."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    env = {
        "DATABASE_URL": url,
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "test",
        "SCHEDULER_ENABLED": "false",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
        "EMBEDDING_BACKEND": "local",
        "VECTOR_STORE": "local",
        "LLM_BACKEND": "extractive",
        "CHATBOT_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("HUGGINGFACE_API_KEY", "PINECONE_API_KEY", "CHAT_RETENTION_DAYS", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    return url


@pytest.fixture
def database_file_url(cli_env: str, monkeypatch: pytest.MonkeyPatch) -> str:
    # alembic's env.py would replace pytest's log handlers for the rest of the session.
    monkeypatch.setattr(logging.config, "fileConfig", lambda *_, **__: None)
    return cli_env


@pytest.fixture
def migrated_url(database_file_url: str) -> str:
    assert main(["migrate"]) == 0
    return database_file_url


def in_session(url: str, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run `work` in a committed session on its own engine and event loop."""

    async def run() -> T:
        engine = create_engine(make_settings(url))
        try:
            async with create_sessionmaker(engine).begin() as session:
                return await work(session)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def table_names(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine(make_settings(url))
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def users(url: str) -> list[User]:
    async def work(session: AsyncSession) -> list[User]:
        return list((await session.scalars(select(User))).all())

    return in_session(url, work)


def documents(url: str) -> list[Document]:
    async def work(session: AsyncSession) -> list[Document]:
        return list((await session.scalars(select(Document).order_by(Document.id))).all())

    return in_session(url, work)


def test_migrate_fresh_sqlite_file_creates_tables(database_file_url: str) -> None:
    code = main(["migrate"])

    assert code == 0
    # The lexical index's FTS5 tables are made by DDL outside the models (app.rag.lexical).
    assert table_names(database_file_url) - FTS_SHADOW_TABLES == {
        *Base.metadata.tables,
        "alembic_version",
    }


@contextmanager
def fresh_process_logging() -> Iterator[None]:
    """The root logger of a fresh process: without pytest's handlers (which pytest attaches
    just before the test body), so `main()`'s basicConfig takes effect. The loggers that
    alembic.ini configures are restored afterwards."""
    names = ("", "alembic", "sqlalchemy.engine")
    saved = [(lg, lg.level, lg.handlers[:], lg.propagate) for lg in map(logging.getLogger, names)]
    logging.getLogger().handlers.clear()
    try:
        yield
    finally:
        for logger, level, handlers, propagate in saved:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate


def test_migrate_with_log_level_info_keeps_app_info_logs(
    cli_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "INFO")

    with fresh_process_logging():
        assert main(["migrate"]) == 0
        info_enabled = logging.getLogger("app.chat.retention").isEnabledFor(logging.INFO)

    assert info_enabled


def test_cleanup_old_messages_prints_deleted_count(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed(session: AsyncSession) -> None:
        user = User(email="ada@example.com", username="ada", password_hash="x")
        session.add(user)
        await session.flush()
        conversation = Conversation(owner_id=user.id, title="t")  # every message has one
        session.add(conversation)
        await session.flush()
        for age in (timedelta(days=40), timedelta(days=31), timedelta(days=90), timedelta(0)):
            session.add(
                ChatMessage(
                    user_id=user.id,
                    conversation_id=conversation.id,
                    role="user",
                    content="hi",
                    timestamp=utcnow() - age,
                )
            )

    async def remaining(session: AsyncSession) -> int:
        return int(await session.scalar(select(func.count()).select_from(ChatMessage)) or 0)

    in_session(migrated_url, seed)
    capsys.readouterr()

    code = main(["cleanup"])

    assert code == 0
    assert capsys.readouterr().out == (
        "deleted 3 chat messages older than 30 days and 0 expired refresh tokens\n"
    )
    assert in_session(migrated_url, remaining) == 1


def test_create_admin_new_email_creates_administrator(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    code = main(["create-admin", "--email", "Root@Example.com"])

    assert code == 0
    assert capsys.readouterr().out == "created administrator root@example.com\n"
    [user] = users(migrated_url)
    assert (user.email, user.username, user.is_admin) == ("root@example.com", "Root", True)
    hasher = build_hasher(make_settings(migrated_url))
    assert hasher.verify_sync(ADMIN_PASSWORD, user.password_hash)


def test_create_admin_existing_admin_keeps_it_and_says_so(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["create-admin", "--email", "root@example.com"]) == 0
    capsys.readouterr()

    code = main(["create-admin", "--email", "root@example.com"])

    assert code == 0
    assert capsys.readouterr().out == "root@example.com is now an administrator\n"
    assert [(u.email, u.is_admin) for u in users(migrated_url)] == [("root@example.com", True)]


def test_create_admin_existing_user_promotes_it(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def seed(session: AsyncSession) -> None:
        session.add(User(email="ada@example.com", username="ada", password_hash="x"))

    in_session(migrated_url, seed)
    capsys.readouterr()

    code = main(["create-admin", "--email", "ada@example.com"])

    assert code == 0
    assert capsys.readouterr().out == "ada@example.com is now an administrator\n"
    [user] = users(migrated_url)
    assert (user.is_admin, user.password_hash) == (True, "x")


def test_create_admin_invalid_email_exits_2(
    migrated_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["create-admin", "--email", "not-an-email"])

    assert code == 2
    assert capsys.readouterr().err.startswith("invalid input: ")
    assert users(migrated_url) == []


@pytest.fixture
def knowledge_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "kb"
    (folder / "nested").mkdir(parents=True)
    (folder / "lighthouse.md").write_text(
        "# Lighthouse\n\nThe Korvath lighthouse was painted teal in 1911.\n"
    )
    (folder / "nested" / "keeper.txt").write_text("Its keeper was Ilse Marren.\n")
    (folder / "notes.xyz").write_text("Not a supported format.\n")
    return folder


@pytest.mark.model
def test_ingest_folder_adds_supported_files_as_shared_documents(
    migrated_url: str, knowledge_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()

    code = main(["ingest", str(knowledge_folder)])

    assert code == 0
    assert capsys.readouterr().out == "added 2, unchanged 0, failed 0\n"
    docs = documents(migrated_url)
    assert sorted((d.filename, d.shared, d.owner_id, d.status) for d in docs) == [
        ("keeper.txt", True, None, DocumentStatus.READY),
        ("lighthouse.md", True, None, DocumentStatus.READY),
    ]


@pytest.mark.model
def test_ingest_same_folder_twice_reports_unchanged(
    migrated_url: str, knowledge_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ingest", str(knowledge_folder)]) == 0
    capsys.readouterr()

    code = main(["ingest", str(knowledge_folder)])

    assert code == 0
    assert capsys.readouterr().out == "added 0, unchanged 2, failed 0\n"
    assert len(documents(migrated_url)) == 2


def test_pinecone_init_creates_index_once(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakePinecone(api_key="pc-cli-key")
    with serve(fake.app) as url:
        monkeypatch.setenv("PINECONE_API_KEY", "pc-cli-key")
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", url)
        assert main(["pinecone-init"]) == 0
        assert "created" in capsys.readouterr().out
        assert fake.indexes["chatbot-index"].dimension == 384
        assert main(["pinecone-init"]) == 0
        assert "exists" in capsys.readouterr().out
        assert len(fake.requests_to("/indexes", "POST")) == 1


def test_pinecone_init_upstream_error_is_clean_message(
    cli_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakePinecone(api_key="the-right-key")
    with serve(fake.app) as url:
        monkeypatch.setenv("PINECONE_API_KEY", "a-wrong-key")
        monkeypatch.setenv("PINECONE_CONTROLLER_HOST", url)
        assert main(["pinecone-init"]) == 1
        err = capsys.readouterr().err
        assert "Pinecone" in err
        assert "a-wrong-key" not in err
