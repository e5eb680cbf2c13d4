"""A PostgreSQL cluster of the tests' own (never the shared one on 5432), to stop and start."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(*command: str) -> list[str]:
    # initdb and postgres refuse to run as root.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else list(command)


@dataclass
class PrivatePostgres:
    data: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(  # noqa: S603
            _as_postgres(
                f"{BIN[-1]}/pg_ctl",
                "-D",
                str(self.data),
                "-o",
                f"-p {self.port} -k {self.data.parent} -c listen_addresses=127.0.0.1 -c fsync=off",
                "-l",
                str(self.data.parent / "log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        subprocess.run(  # noqa: S603
            _as_postgres(f"{BIN[-1]}/pg_ctl", "-D", str(self.data), "-m", "immediate", "stop"),
            check=False,
            capture_output=True,
            timeout=60,
        )

    def wait_down(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)
        raise AssertionError("the private PostgreSQL did not stop")


@contextmanager
def private_cluster() -> Iterator[PrivatePostgres]:
    """initdb a throwaway cluster on a free port, start it, and remove it afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pg-outage-"))
    os.chmod(root, 0o777)  # noqa: S103 - a throwaway cluster the postgres user must write to
    data = root / "data"
    subprocess.run(  # noqa: S603
        _as_postgres(
            f"{BIN[-1]}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    cluster = PrivatePostgres(data, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def available() -> bool:
    return bool(BIN) and shutil.which("runuser") is not None


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[PrivatePostgres]:
    if not available():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with private_cluster() as cluster:
        yield cluster
