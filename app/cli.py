"""The `chatbot` command: serve, migrate, cleanup, create-admin, ingest, pinecone-init."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings, load_settings
from app.core.logs import configure_logging
from app.core.metrics import prepare_multiprocess_dir

if TYPE_CHECKING:
    from alembic.config import Config

PROJECT_ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("app.cli")


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    # A checkout has it beside app/; an installed package (the container) runs from /srv.
    candidates = [PROJECT_ROOT / "alembic.ini", Path.cwd() / "alembic.ini"]
    ini = next((path for path in candidates if path.exists()), None)
    if ini is None:
        raise SystemExit("alembic.ini not found: run from the project directory")
    config = Config(str(ini))
    config.attributes["database_url"] = settings.database_url
    # alembic.ini's logging section would reset the root logger and hide LOG_LEVEL=INFO logs.
    config.attributes["configure_logging"] = False
    return config


def migrate(settings: Settings, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(settings), revision)


def describe_database(url: str) -> str:
    """The database a command uses, for people: a SQLite file as its absolute path, any other
    URL without its password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "DATABASE_URL (not a valid URL)"
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            return "SQLite in memory"
        return f"SQLite {Path(parsed.database).resolve()}"
    return parsed.render_as_string(hide_password=True)


def _stop_signals_exit_cleanly() -> None:
    """A stop signal ends `chatbot serve` with status 0 once the server has shut down.

    uvicorn re-raises the signal it stopped on, so a clean shutdown still died "killed by
    SIGTERM" and `make run` reported `make: *** [run] Terminated`, exit 2. These handlers get
    that re-raised signal (and one arriving before uvicorn takes the signals over).
    """

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    root_path = settings.root_path if args.root_path is None else args.root_path.rstrip("/")
    if root_path and not root_path.startswith("/"):
        print("--root-path must start with '/' (e.g. /chatbot)", file=sys.stderr)
        return 2
    if not args.no_migrate:
        logger.info("chatbot serve: applying database migrations")
        migrate(settings)
    # Workers build the app from the environment: the prefix must reach them that way too.
    os.environ["ROOT_PATH"] = root_path
    prepare_multiprocess_dir()  # PROMETHEUS_MULTIPROC_DIR: no stale values from a past run
    _stop_signals_exit_cleanly()
    uvicorn.run(
        "app.main:app",
        host=settings.host if args.host is None else args.host,
        port=settings.port if args.port is None else args.port,
        workers=args.workers,
        root_path=root_path,
        proxy_headers=True,
        # The same setting decides whose X-Forwarded-For the rate limits believe.
        forwarded_allow_ips=settings.forwarded_allow_ips,
        server_header=False,
        log_level=settings.log_level.lower(),
        # JSON logs: uvicorn's records go through our handler, not uvicorn's own formatters.
        log_config=None if settings.log_format == "json" else LOGGING_CONFIG,
    )
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    migrate(settings, args.revision)
    return 0


@asynccontextmanager
async def _sessions(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    import app.models  # noqa: F401 - every table, so foreign keys resolve (users, documents)
    from app.core.db import create_engine, create_sessionmaker

    engine = create_engine(settings)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


async def _cleanup(settings: Settings) -> tuple[int, int] | None:
    from app.chat.retention import JOB_NAME
    from app.core.scheduler import JobLease, run_exclusive
    from app.lifespan import RetentionRun, purge_expired

    async with _sessions(settings) as sessions:
        runs: list[RetentionRun] = []

        async def job() -> str:
            runs.append(await purge_expired(settings, sessions))
            return runs[0].summary()

        ran = await run_exclusive(JobLease(sessions, JOB_NAME), job)
        return (runs[0].messages, runs[0].refresh_tokens) if ran is not None else None


def cmd_cleanup(_: argparse.Namespace, settings: Settings) -> int:
    deleted = asyncio.run(_cleanup(settings))
    if deleted is None:
        print("cleanup is already running in another process; nothing done")
        return 1
    messages, tokens = deleted
    print(
        f"deleted {messages} chat messages older than {settings.chat_retention_days} days "
        f"and {tokens} expired refresh tokens"
    )
    return 0


async def _deactivate(settings: Settings, email: str) -> str | None:
    from app.auth.repository import RefreshTokenRepository, UserRepository
    from app.auth.schemas import normalize_email
    from app.auth.service import deactivate_user

    async with _sessions(settings) as sessions, sessions.begin() as session:
        users = UserRepository(session)
        user = await users.get_by_email(normalize_email(email))
        if user is None:
            return None
        revoked = await deactivate_user(users, RefreshTokenRepository(session), user)
        return f"deactivated {user.email}; revoked {revoked} refresh tokens"


def cmd_deactivate(args: argparse.Namespace, settings: Settings) -> int:
    message = asyncio.run(_deactivate(settings, args.email))
    if message is None:
        print(f"no account with the email {args.email}", file=sys.stderr)
        return 1
    print(message)
    return 0


async def _create_admin(settings: Settings, email: str, username: str, password: str) -> str:
    from app.auth.repository import UserRepository
    from app.auth.schemas import UserCreate
    from app.auth.service import register_user
    from app.lifespan import build_hasher

    data = UserCreate(email=email, username=username, password=password)
    # Not `sessions.begin()`: register_user ends its read transaction before hashing.
    async with _sessions(settings) as sessions, sessions() as session:
        users = UserRepository(session)
        existing = await users.get_by_email(data.email)
        if existing is not None:
            existing.is_admin = True
            await session.commit()
            return f"{data.email} is now an administrator"
        hasher = build_hasher(settings)
        try:
            await register_user(users, hasher, data, is_admin=True)
        finally:
            hasher.close()
        await session.commit()
        return f"created administrator {data.email}"


def cmd_create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    password = os.environ.get("CHATBOT_ADMIN_PASSWORD") or getpass.getpass("Password: ")
    try:
        message = asyncio.run(
            _create_admin(settings, args.email, args.username or args.email.split("@")[0], password)
        )
    except ValidationError as exc:
        print(f"invalid input: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    print(message)
    return 0


def _skip_reason(path: Path, max_bytes: int) -> str | None:
    """Why a file found in a folder is not ingested, or None to ingest it."""
    from app.documents.formats import ACCEPTED, CONTENT_TYPES

    suffix = path.suffix.lower()
    if suffix not in CONTENT_TYPES:
        return f"unsupported type {suffix or '(no extension)'!r} (accepted: {ACCEPTED})"
    size = path.stat().st_size
    if size > max_bytes:
        return f"{size} bytes, larger than {max_bytes} (MAX_UPLOAD_BYTES)"
    return None


def iter_files(paths: Sequence[str], max_bytes: int | None = None) -> Iterator[Path]:
    """The given files, and the files of accepted types found under the given folders
    (hidden folders such as .git are not entered); every file left out is reported on
    stderr with the reason. The type is confirmed from the content when it is read."""
    limit = max_bytes if max_bytes is not None else sys.maxsize
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                relative = found.relative_to(path).parts
                if any(part.startswith(".") for part in relative[:-1]) or not found.is_file():
                    continue
                reason = _skip_reason(found, limit)
                if reason is None:
                    yield found
                else:
                    print(f"skipped {found}: {reason}", file=sys.stderr)
        elif path.is_file():
            if path.stat().st_size > limit:
                print(
                    f"skipped {path}: larger than {limit} bytes (MAX_UPLOAD_BYTES)", file=sys.stderr
                )
            else:
                yield path
        else:
            print(f"skipped {raw}: not found", file=sys.stderr)


def _collection_id(value: str) -> int:
    """argparse type of `--collection`: a positive id (a row id fits 32 bits)."""
    from app.core.db import MAX_ID

    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_ID:
        raise argparse.ArgumentTypeError(f"not a collection id: {value!r}")
    return int(value)


class CollectionMissing(Exception):
    """`chatbot ingest --collection ID` names no collection (or one being deleted)."""


async def _collection_exists(
    sessions: async_sessionmaker[AsyncSession], collection_id: int
) -> bool:
    from sqlalchemy import select

    from app.collections.models import Collection

    async with sessions() as session:
        found = await session.scalar(
            select(Collection.id).where(
                Collection.id == collection_id, Collection.deleting.is_(False)
            )
        )
    return found is not None


async def _ingest(
    settings: Settings,
    paths: Sequence[str],
    *,
    background: bool = False,
    collection_id: int | None = None,
) -> tuple[int, int, int]:
    """Ingest as the operator: into the shared knowledge base, or with `collection_id` into
    that collection (no member's role is checked: whoever runs this owns the deployment)."""
    from tqdm import tqdm

    from app.core.errors import AppError
    from app.documents.formats import extract_upload
    from app.documents.live import live_documents
    from app.documents.models import DocumentStatus
    from app.documents.service import DocumentService, NewDocument
    from app.rag.factory import build_embedder, build_store

    files = list(iter_files(paths, settings.max_upload_bytes))
    added = skipped = failed = 0
    async with AsyncExitStack() as stack:
        sessions = await stack.enter_async_context(_sessions(settings))
        # Checked before anything is loaded, so a typo costs no embedding work.
        if collection_id is not None and not await _collection_exists(sessions, collection_id):
            raise CollectionMissing(collection_id)
        embedder = await build_embedder(settings)
        stack.push_async_callback(embedder.aclose)
        store = await build_store(settings, sessions, wrap_remote=live_documents(sessions))
        stack.push_async_callback(store.aclose)
        broker = None
        if background:  # queued for `chatbot worker`, not indexed here
            from app.documents.broker import IngestionBroker

            broker = await IngestionBroker.connect(settings)
        service = DocumentService(sessions, embedder, store, settings, broker=broker)
        stack.push_async_callback(service.aclose)
        bar = tqdm(total=len(files), unit="file", desc="ingest", file=sys.stderr)
        chunks_done = 0
        started = time.perf_counter()

        def progress(n: int) -> None:
            nonlocal chunks_done
            chunks_done += n
            rate = chunks_done / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix(chunks=chunks_done, chunks_per_s=f"{rate:.1f}")

        for path in files:
            try:
                content_type, text = await asyncio.to_thread(
                    extract_upload, path.read_bytes(), path.name, service.extraction_limits
                )
                new = NewDocument(
                    title=path.name,  # as an upload's: the file name, extension kept
                    content=text,
                    content_type=content_type,
                    filename=path.name,
                    shared=collection_id is None,
                    collection_id=collection_id,
                )
                document, created = await service.add(
                    new, owner_id=None, background=background, progress=progress
                )
            except AppError as exc:
                bar.write(f"failed {path}: {exc.detail}")
                failed += 1
            else:
                if document.status == DocumentStatus.FAILED:
                    bar.write(f"failed {path}: {document.error}")
                    failed += 1
                elif created:
                    added += 1
                else:
                    skipped += 1
            bar.update(1)
        bar.close()
    return added, skipped, failed


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    if args.background and not settings.task_broker_url:
        print("--background needs TASK_BROKER_URL (and `chatbot worker`)", file=sys.stderr)
        return 2
    try:
        added, skipped, failed = asyncio.run(
            _ingest(settings, args.paths, background=args.background, collection_id=args.collection)
        )
    except CollectionMissing:
        print(f"collection {args.collection} not found", file=sys.stderr)
        return 2
    print(f"added {added}, unchanged {skipped}, failed {failed}")
    return 1 if failed else 0


async def _pinecone_init(settings: Settings) -> str:
    from app.rag.backends.pinecone import ensure_index
    from app.rag.factory import build_embedder

    embedder = await build_embedder(settings)
    try:
        dimension = embedder.dimension
    finally:
        await embedder.aclose()
    host, created = await ensure_index(settings, dimension)
    verb = "created" if created else "exists:"
    return f"index {settings.pinecone_index} {verb} host={host} dimension={dimension}"


def cmd_pinecone_init(_: argparse.Namespace, settings: Settings) -> int:
    if settings.pinecone_api_key is None:
        print("PINECONE_API_KEY is not set", file=sys.stderr)
        return 2
    from app.core.errors import AppError

    try:
        print(asyncio.run(_pinecone_init(settings)))
    except AppError as exc:
        print(f"pinecone-init failed: {exc.detail}", file=sys.stderr)
        return 1
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.task_broker_url:
        print("TASK_BROKER_URL is not set (e.g. redis://127.0.0.1:6379/0)", file=sys.stderr)
        return 2
    from app.worker import main as run_worker

    run_worker(settings, burst=args.burst)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="apply migrations, then run the API with uvicorn")
    serve.add_argument("--host", default=None, help="default: HOST, else 127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: PORT, else 8000")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--no-migrate", action="store_true", help="skip `alembic upgrade head`")
    serve.add_argument(
        "--root-path",
        default=None,
        help="path prefix the reverse proxy strips, e.g. /chatbot (default: ROOT_PATH)",
    )
    serve.set_defaults(handler=cmd_serve)

    mig = sub.add_parser("migrate", help="apply database migrations")
    mig.add_argument("revision", nargs="?", default="head")
    mig.set_defaults(handler=cmd_migrate)

    sub.add_parser("cleanup", help="delete chat messages past retention, once").set_defaults(
        handler=cmd_cleanup
    )

    admin = sub.add_parser(
        "create-admin",
        help="create an administrator, or promote an existing user "
        "(password from CHATBOT_ADMIN_PASSWORD or a prompt)",
    )
    admin.add_argument("--email", required=True)
    admin.add_argument("--username")
    admin.set_defaults(handler=cmd_create_admin)

    deactivate = sub.add_parser(
        "deactivate",
        help="disable an account: its tokens and API keys stop working, refresh tokens revoked",
    )
    deactivate.add_argument("--email", required=True)
    deactivate.set_defaults(handler=cmd_deactivate)

    worker = sub.add_parser(
        "worker", help="run ingestion jobs from the task queue (needs TASK_BROKER_URL)"
    )
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.set_defaults(handler=cmd_worker)

    ingest = sub.add_parser(
        "ingest",
        help="load files and folders into the shared knowledge base (or one collection)",
    )
    ingest.add_argument("paths", nargs="+")
    ingest.add_argument(
        "--collection",
        type=_collection_id,
        default=None,
        metavar="ID",
        help="add the documents to this existing collection instead of the shared knowledge base",
    )
    ingest.add_argument(
        "--background",
        action="store_true",
        help="queue big documents for `chatbot worker` instead of indexing them here",
    )
    ingest.set_defaults(handler=cmd_ingest)

    sub.add_parser(
        "pinecone-init", help="create the Pinecone index (dimension from the embedder)"
    ).set_defaults(handler=cmd_pinecone_init)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    configure_logging(
        settings.log_level, "%(levelname)s %(name)s: %(message)s", log_format=settings.log_format
    )
    if args.command != "pinecone-init":
        # A log line (stderr, JSON with LOG_FORMAT=json), so stdout stays the command's result:
        # which database a command fills (CHATBOT_HOME, default the project folder) is shown.
        logger.info(
            "chatbot %s: using database %s",
            args.command,
            describe_database(settings.database_url),
        )
    return int(args.handler(args, settings))


if __name__ == "__main__":
    sys.exit(main())
