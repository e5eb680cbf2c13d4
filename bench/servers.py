"""Real servers for the HTTP benchmarks and the durability test: `chatbot serve` (or a bare
FastAPI app with the same uvicorn flags) in a process of its own on 127.0.0.1, a fresh SQLite
file or PostgreSQL database each, wrk as the client, and statistics over alternating rounds."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test_perf")
# Server settings of every run: cheap hashing, no limits, no scheduler, and remote backends
# that nothing calls (no model is loaded) unless a benchmark points them at its fakes.
BASE_ENV = {
    "SECRET_KEY": SECRET,
    "ENVIRONMENT": "development",
    "LOG_LEVEL": "WARNING",
    "SCHEDULER_ENABLED": "false",
    "RATE_LIMIT_ENABLED": "false",
    # A slow baseline (the old embedder during an ingestion) outlived the 15-minute default.
    "ACCESS_TOKEN_EXPIRE_MINUTES": "240",
    "PASSWORD_HASH_TIME_COST": "1",
    "PASSWORD_HASH_MEMORY_KIB": "8",
    "EMBEDDING_BACKEND": "huggingface",
    "EMBEDDING_URL": "http://127.0.0.1:9/embed",
    "LLM_BACKEND": "huggingface",
    "LLM_BASE_URL": "http://127.0.0.1:9/v1",
    "VECTOR_STORE": "local",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_available(url: str = PG_URL) -> bool:
    try:
        asyncio.run(reset_postgres(url))
    except Exception:
        return False
    return True


async def reset_postgres(url: str = PG_URL) -> None:
    """An empty public schema in the benchmark's own database (never another one's)."""
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"), timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@dataclass(slots=True)
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path, path: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")


def start_app(
    database_url: str,
    workdir: Path,
    env: Mapping[str, str] = {},
    *,
    port: int | None = None,
    root: Path = ROOT,
) -> Server:
    """`chatbot serve` (migrations first) on a free port with BASE_ENV plus `env`; `root` runs
    another tree of the code (e.g. `git archive` of an older commit) with this venv."""
    port = port or free_port()
    log = workdir / f"server-{port}.log"
    full = {**os.environ, **BASE_ENV, "DATABASE_URL": database_url, **env}
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if root == ROOT:
        command = [str(BIN / "chatbot"), *serve]
    else:
        full["PYTHONPATH"] = str(root)
        command = [sys.executable, "-c", "import sys; from app.cli import main; sys.exit(main())"]
        command += serve
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            command, cwd=root, env=full, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log, "/health")
    except BaseException:
        Server(process, base, log).stop(signal.SIGKILL)
        raise
    return Server(process, base, log)


def start_module(module: str, workdir: Path, *args: str, ready: str = "/hello") -> Server:
    """`python -m <module> PORT ...` (a bare app or a fake upstream) on a free port."""
    port = free_port()
    log = workdir / f"{module}-{port}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", module, str(port), *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log, ready)
    return Server(process, base, log)


def source_tree(ref: str, workdir: Path) -> Path:
    """The code at git `ref`, extracted (not checked out) under `workdir`."""
    target = workdir / f"tree-{ref}"
    target.mkdir()
    git, tar = shutil.which("git") or "git", shutil.which("tar") or "tar"
    archive = subprocess.run(  # noqa: S603
        [git, "archive", ref], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run([tar, "-x", "-C", str(target)], input=archive, check=True)  # noqa: S603
    return target


@contextmanager
def running(servers: list[Server]) -> Iterator[list[Server]]:
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def signup(base: str, email: str = "bench@example.com") -> dict[str, str]:
    """A new account's bearer header."""
    password = "bench password 1"
    httpx.post(
        f"{base}/api/signup/",
        json={"email": email, "username": email.split("@")[0], "password": password},
        timeout=30,
    ).raise_for_status()
    login = httpx.post(
        f"{base}/api/login/", json={"email": email, "password": password}, timeout=30
    )
    login.raise_for_status()
    return {"Authorization": f"Bearer {login.json()['access']}"}


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    errors: int


def wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    headers: Mapping[str, str] = {},
    threads: int = 2,
    script: Path | None = None,
) -> WrkResult:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    command = [
        "wrk",
        f"-t{min(threads, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "30s",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run(  # noqa: S603
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps,
        p50,
        p99,
        int(non_2xx.group(1)) if non_2xx else 0,
        sum(int(g) for g in errors.groups()) if errors else 0,
    )


def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median of the rounds and their range, for the tables."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "rounds": list(values),
    }
