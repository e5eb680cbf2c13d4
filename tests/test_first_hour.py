"""What a new user meets in the first hour (issue 23): the CLI's defaults from any folder,
`make run` stopped by a signal, `/docs` tags, and answers over Markdown that read as text."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli import describe_database
from app.core import config
from app.core.config import Settings
from app.rag.markup import strip_markup
from app.rag.pipeline import snippet
from tests.conftest import TEST_SECRET, new_user

PROJECT = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parents[1]
CHATBOT = VENV / "bin" / "chatbot"

WIFI = """# Office Wi-Fi

The guest network is called **Visitors** and needs no password.

## Staff network

- The staff network is called `Corp-5G`.
- Its password changes every month.
"""


def chatbot(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed script, with none of the settings that would pick the database for it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "SECRET_KEY", "HUGGINGFACE", "PINECONE", "LOG_"))
    }
    return subprocess.run(  # noqa: S603 - our own installed script
        [str(CHATBOT), *args],
        cwd=cwd,
        env={**env, "CHATBOT_HOME": str(home), "ENVIRONMENT": "development"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_from_another_folder_uses_the_home_database(tmp_path: Path) -> None:
    """Reproduced: `chatbot ingest` run elsewhere silently made and filled ./chatbot.db."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    (elsewhere / "notes").mkdir(parents=True)
    (elsewhere / "notes" / "wifi.md").write_text(WIFI)

    assert chatbot(home, home, "migrate").returncode == 0
    result = chatbot(elsewhere, home, "ingest", "notes")

    assert result.returncode == 0, result.stderr
    assert "added 1, unchanged 0, failed 0" in result.stdout
    assert f"using database SQLite {home / 'chatbot.db'}" in result.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["notes"]  # no database, no key
    assert (home / ".secret_key").exists()
    with sqlite3.connect(home / "chatbot.db") as conn:
        titles = conn.execute("SELECT title FROM documents").fetchall()
    assert titles == [("wifi.md",)]  # the file name, as an upload's title


def test_settings_without_chatbot_home_use_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHATBOT_HOME", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config.chatbot_home() == PROJECT
    assert Settings(_env_file=None).database_url == f"sqlite+aiosqlite:///{PROJECT}/chatbot.db"


def test_settings_read_env_file_of_chatbot_home_not_of_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    elsewhere.mkdir()
    (home / ".env").write_text("RAG_TOP_K=7\n")
    (elsewhere / ".env").write_text("RAG_TOP_K=2\nDATABASE_URL=sqlite+aiosqlite:///other.db\n")
    monkeypatch.setenv("CHATBOT_HOME", str(home))
    monkeypatch.delenv("RAG_TOP_K", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(elsewhere)
    settings = Settings()
    assert settings.rag_top_k == 7
    assert settings.database_url == f"sqlite+aiosqlite:///{home / 'chatbot.db'}"


def test_empty_database_url_setting_means_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATBOT_HOME", str(tmp_path))
    settings = Settings(_env_file=None, database_url=" ")
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'chatbot.db'}"


def test_describe_database_with_password_hides_it() -> None:
    shown = describe_database("postgresql+asyncpg://chatbot:s3cret-pw@db:5432/chatbot")
    assert "s3cret-pw" not in shown
    assert "db:5432/chatbot" in shown
    assert describe_database("sqlite+aiosqlite:///./x.db") == f"SQLite {Path.cwd() / 'x.db'}"
    assert "not a valid URL" in describe_database("no url at all")


# --- make run and signals --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`make run` on a free port and a database of its own; the venv counts as set up (`-o`),
    so a pyproject.toml edited meanwhile does not start a reinstall."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("SKIPPED LOUDLY: no `make` on this machine")
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HUGGINGFACE", "PINECONE"))},
        "CHATBOT_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'run.db'}",
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "test",
        "SCHEDULER_ENABLED": "false",
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    process = subprocess.Popen(  # noqa: S603 - make and our own Makefile
        [make, "--no-print-directory", "-o", f"{VENV}/.installed", "run", f"VENV={VENV}"],
        cwd=PROJECT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("make run did not become healthy")
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _server_pid(make_pid: int) -> int:
    children = Path(f"/proc/{make_pid}/task/{make_pid}/children").read_text().split()
    (pid,) = children  # `exec`: the server itself, no shell in between
    return int(pid)


def test_make_run_sigterm_to_server_exits_zero_without_make_error(
    make_run: tuple[subprocess.Popen[str], int],
) -> None:
    """Reproduced: `make: *** [Makefile:24: run] Terminated` and exit 2 after a clean stop."""
    process, _ = make_run
    os.kill(_server_pid(process.pid), signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "make: ***" not in output
    assert "Application shutdown complete" in output
    assert "using database SQLite" in output


def test_make_run_ctrl_c_stops_server_cleanly_without_make_error(
    make_run: tuple[subprocess.Popen[str], int],
) -> None:
    """Ctrl-C signals the whole foreground group: make itself then ends by SIGINT, as every
    interrupted program does, without reporting the server as a failed recipe. (A guard: this
    case was already clean, since uvicorn swallows the SIGINT it re-raises; SIGTERM was not.)"""
    process, _ = make_run
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert "make: ***" not in output
    assert "Application shutdown complete" in output
    assert "Traceback" not in output
    assert process.returncode == -signal.SIGINT


# --- /docs --------------------------------------------------------------------------------------


async def test_openapi_conversation_operations_have_one_tag(client: httpx.AsyncClient) -> None:
    """Reproduced: the six conversation operations were listed twice in /docs."""
    schema = (await client.get("/openapi.json")).json()
    tags = {
        (method, path): operation["tags"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if path.startswith(("/api/conversations", "/api/chat"))
    }
    conversations = {k: v for k, v in tags.items() if k[1].startswith("/api/conversations")}
    assert len(conversations) == 6
    assert all(v == ["conversations"] for v in conversations.values()), conversations
    chat = {k: tags[k] for k in [("post", "/api/chat/"), ("post", "/api/chat/stream/")]}
    chat[("get", "/api/chat-history/")] = tags[("get", "/api/chat-history/")]
    assert all(v == ["chat"] for v in chat.values()), chat


# --- answers and snippets over Markdown ----------------------------------------------------


def test_strip_markup_removes_markers_and_keeps_identifiers() -> None:
    text = (
        "## 2. Office Wi-Fi ##\n"
        "- The guest network is **Visitors**, see [the wiki](https://wiki/x).\n"
        "> 1. Set `work_mem` to 2*3*4 MB - not more.\n"
        "---\n"
        "* [ ] snake_case_name stays"
    )
    assert strip_markup(text).split("\n") == [
        "2. Office Wi-Fi",
        "The guest network is Visitors, see the wiki.",
        "Set work_mem to 2*3*4 MB - not more.",
        "",
        "snake_case_name stays",
    ]
    assert strip_markup(text, headings=False).startswith("The guest network")


def test_snippet_of_markdown_chunk_has_no_markers() -> None:
    assert snippet("# Office Wi-Fi\n- The guest network is called **Visitors**.") == (
        "Office Wi-Fi The guest network is called Visitors."
    )


@pytest.mark.model
async def test_extractive_answer_over_markdown_document_has_no_markup(
    client: httpx.AsyncClient,
) -> None:
    """Reproduced: "# Office Wi-Fi The guest network is called ..." quoted as the answer."""
    headers = await new_user(client)
    upload = await client.post(
        "/api/documents/", files={"file": ("wifi.md", WIFI.encode())}, headers=headers
    )
    assert upload.status_code == 201, upload.text
    assert upload.json()["title"] == "wifi.md"

    for question, expected in [
        ("What is the guest network called?", "The guest network is called Visitors"),
        ("What is the staff network called?", "The staff network is called Corp-5G"),
    ]:
        reply = await client.post("/api/chat/", json={"message": question}, headers=headers)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert expected in body["response"]
        shown = [body["response"], *(source["snippet"] for source in body["sources"])]
        for text in shown:
            assert "#" not in text
            assert "**" not in text
            assert "`" not in text
            assert not text.startswith("- ")
            assert " - " not in text
