"""What every benchmark shares: settings, a fresh database, statistics, memory, the machine,
and the result each one returns (printed as a table and written as JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import create_engine, create_sessionmaker
from app.models import Base
from app.testing import isolated_settings

BENCH_SECRET = "bench-secret-key-that-is-long-enough-0123456789"


# Remote backends that are never called (their constructors make no request): an app built
# with them starts without loading the local model, for benchmarks that swap in their own.
UNUSED_REMOTE_BACKENDS: dict[str, Any] = {
    "embedding_backend": "huggingface",
    "embedding_url": "http://127.0.0.1:9/embed",
    "llm_backend": "huggingface",
    "llm_base_url": "http://127.0.0.1:9/v1",
    "vector_store": "local",
}


def bench_settings(database_url: str, **overrides: Any) -> Settings:
    """Test-like settings (cheap password hashing, no scheduler, embedded backends)."""
    return isolated_settings(database_url, BENCH_SECRET, log_level="WARNING", **overrides)


@dataclass(frozen=True, slots=True)
class Database:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]


@asynccontextmanager
async def fresh_database(path: Path, **overrides: Any) -> AsyncIterator[Database]:
    """A new SQLite file at `path` with every table created (WAL, like production)."""
    settings = bench_settings(f"sqlite+aiosqlite:///{path}", **overrides)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield Database(settings, engine, create_sessionmaker(engine))
    finally:
        await engine.dispose()


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float]:
    values = np.asarray(seconds, dtype=np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
        "min_ms": float(values.min()),
    }


def rss_mb() -> float:
    """Resident set size now (Linux /proc), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (getrusage; KiB on Linux), in MiB.

    The kernel updates the high-water mark lazily, so it can trail the current RSS a little.
    """
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "sentence_transformers": _version("sentence-transformers"),
        "numpy": _version("numpy"),
        "sqlalchemy": _version("sqlalchemy"),
        "aiosqlite": _version("aiosqlite"),
        "fastapi": _version("fastapi"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


@dataclass(frozen=True, slots=True)
class Goal:
    name: str
    measured: float
    target: str
    met: bool | None  # None: not checked in this mode (e.g. --quick skips the big size)


@dataclass(frozen=True, slots=True)
class Headline:
    """One line of the summary table: a figure, its same-run baseline and their ratio."""

    metric: str
    value: float
    baseline: float
    unit: str
    ratio: float


@dataclass(slots=True)
class Result:
    name: str
    description: str
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[tuple[str, str]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    headlines: list[Headline] = field(default_factory=list)

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def headline(self, metric: str, value: float, baseline: float, unit: str) -> None:
        self.headlines.append(Headline(metric, value, baseline, unit, value / baseline))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def goal_status(goal: Goal) -> str:
    return "not checked" if goal.met is None else ("MET" if goal.met else "MISSED")


def format_result(result: Result) -> str:
    width = max([len(label) for label, _ in result.rows] + [len(g.name) for g in result.goals])
    lines = [f"== {result.name}: {result.description}"]
    lines += [f"  {label:<{width}}  {value}" for label, value in result.rows]
    for goal in result.goals:
        lines.append(
            f"  {goal.name:<{width}}  {goal.measured:.3g} (goal {goal.target}): {goal_status(goal)}"
        )
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines)


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def cli(
    run: Callable[[bool], Coroutine[Any, Any, Result]], argv: Sequence[str] | None = None
) -> Result:
    """`--quick` for the small sizes; `--json PATH` to keep the result."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--json", type=Path, help="write the result to this file")
    args = parser.parse_args(argv)
    info = machine()  # before the run: the load average shows what else was running
    result = asyncio.run(run(args.quick))
    print(format_result(result), flush=True)
    if args.json:
        write_json(args.json, {"machine": info, "quick": args.quick, **result.to_json()})
    return result
