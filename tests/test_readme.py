"""The README's quick start, run as written against `chatbot serve` on a fresh database, and
its command-line examples, run as written the way a new user reaches `chatbot`."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET

README = Path(__file__).resolve().parents[1] / "README.md"
CHATBOT = Path(sys.executable).with_name("chatbot")


def quick_start_block() -> str:
    text = README.read_text()
    after = text.split("Then, in another shell", 1)[1]
    match = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert match, "the quick start's shell block is missing from the README"
    return match.group(1)


def command_line_block() -> str:
    after = README.read_text().split("\n## Command line\n", 1)[1]
    match = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert match, "the command line section's shell block is missing from the README"
    return match.group(1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HUGGINGFACE", "PINECONE"))},
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'quick.db'}",
        "SECRET_KEY": TEST_SECRET,
        "ENVIRONMENT": "test",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - our own installed script
        [str(CHATBOT), "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("chatbot serve did not become healthy")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.mark.model
def test_quick_start_commands_as_written(server: str, tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603
        ["/bin/bash", "-euo", "pipefail", "-c", quick_start_block()],
        cwd=tmp_path,
        env={**os.environ, "BASE": server},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "handbook.md").exists()
    assert '"status":"ready"' in result.stdout
    assert "25 days of paid leave" in result.stdout
    assert '"title":"handbook.md"' in result.stdout


def test_quick_start_shows_a_failed_login(server: str, tmp_path: Path) -> None:
    """Reproduced: a failed login ended in a Python KeyError, a missing file printed nothing."""
    signup, rest = quick_start_block().split("TOKEN=", 1)
    block = signup + "TOKEN=" + rest.replace("correct horse battery", "a wrong password", 1)
    requests = httpx.post(
        f"{server}/api/signup/",
        json={"email": "ada@example.com", "username": "ada", "password": "correct horse battery"},
    )
    assert requests.status_code == 201
    result = subprocess.run(  # noqa: S603
        ["/bin/bash", "-uo", "pipefail", "-c", block],
        cwd=tmp_path,
        env={**os.environ, "BASE": server},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "email_taken" in output  # the sign-up's 409 is shown, not swallowed
    assert "login failed" in output
    assert "invalid_credentials" in output
    assert "KeyError" not in output


@pytest.mark.model
def test_command_line_examples_as_written_from_a_fresh_shell(tmp_path: Path) -> None:
    """Reproduced: `chatbot` was not on PATH after `make run` (command not found), and run from
    another folder it made and filled a database of that folder."""
    venv = Path(sys.executable).parents[1]
    project, home, chatbot_home = tmp_path / "project", tmp_path / "ada", tmp_path / "data"
    for folder in (project, home, chatbot_home):
        folder.mkdir()
    (project / ".venv").symlink_to(venv)  # the project folder, as far as the block can tell
    path = [p for p in os.environ["PATH"].split(os.pathsep) if Path(p) != venv / "bin"]
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "SECRET_KEY", "HUGGINGFACE", "PINECONE", "LOG_"))
            and k not in {"VIRTUAL_ENV", "PYTHONHOME"}
        },
        "PATH": os.pathsep.join(path),  # a fresh shell: `chatbot` only after the activation
        "HOME": str(home),
        "CHATBOT_HOME": str(chatbot_home),
        "ENVIRONMENT": "development",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "8",
    }
    result = subprocess.run(  # noqa: S603
        ["/bin/bash", "-euo", "pipefail", "-c", command_line_block()],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "added 1, unchanged 0, failed 0" in result.stdout
    assert "created administrator admin@example.com" in result.stdout
    assert "deleted 0 chat messages" in result.stdout
    assert f"using database SQLite {chatbot_home / 'chatbot.db'}" in result.stderr
    assert [p.name for p in project.iterdir()] == [".venv"]  # nothing made where it ran
    with sqlite3.connect(chatbot_home / "chatbot.db") as conn:
        documents = conn.execute("SELECT title, shared FROM documents").fetchall()
        admins = conn.execute("SELECT email FROM users WHERE is_admin").fetchall()
    assert documents == [("wifi.md", 1)]
    assert admins == [("admin@example.com",)]
