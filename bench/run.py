"""Run every benchmark, one after the other, each in its own process (clean memory figures,
no model threads left over), print a summary table and write `bench/results/latest.json`.

    .venv/bin/python -m bench.run [--quick] [--only store ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import machine, write_json

BENCHMARKS = ("ingest", "store", "pipeline", "auth")
ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "latest.json"
# Bounds on one benchmark process; the full run normally takes about two minutes.
TIMEOUT_SECONDS = {False: 240, True: 90}


def run_one(name: str, quick: bool, workdir: Path) -> dict[str, Any]:
    out = workdir / f"{name}.json"
    command = [sys.executable, "-m", f"bench.bench_{name}", "--json", str(out)]
    if quick:
        command.append("--quick")
    timeout = TIMEOUT_SECONDS[quick]
    start = time.perf_counter()
    try:
        completed = subprocess.run(command, check=False, timeout=timeout, cwd=ROOT)  # noqa: S603
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"timed out after {timeout} s"}
    seconds = time.perf_counter() - start
    if completed.returncode != 0 or not out.exists():
        return {"name": name, "error": f"exit status {completed.returncode}"}
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = seconds
    return result


def summary(results: list[dict[str, Any]]) -> str:
    header = ("bench", "metric", "value", "baseline", "ratio", "unit")
    rows: list[tuple[str, ...]] = [header]
    for result in results:
        if "error" in result:
            rows.append((result["name"], "FAILED: " + result["error"], "", "", "", ""))
            continue
        for h in result["headlines"]:
            rows.append(
                (
                    result["name"],
                    h["metric"],
                    f"{h['value']:.4g}",
                    f"{h['baseline']:.4g}",
                    f"{h['ratio']:.3g}x",
                    h["unit"],
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    for result in results:
        for goal in result.get("goals", []):
            status = {None: "not checked", True: "MET", False: "MISSED"}[goal["met"]]
            lines.append(
                f"goal {result['name']}: {goal['name']} = {goal['measured']:.3g} "
                f"(target {goal['target']}): {status}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    info = machine()
    started = datetime.now(UTC)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        results = [run_one(name, args.quick, Path(tmp)) for name in args.only]
    total = time.perf_counter() - start

    print("\n" + summary(results))
    print(f"total {total:.0f} s; results in {args.output}")
    write_json(
        args.output,
        {
            "started_at": started.isoformat(timespec="seconds"),
            "quick": args.quick,
            "total_s": total,
            "machine": info,
            "results": results,
        },
    )
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
