"""Plot the JSON of bench.perf.history, bench.perf.concurrency and bench.perf.turns as one PNG.

    .venv/bin/python -m bench.perf.plot --history h.json --concurrency c.json --turns t.json \\
        --out docs/perf.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _bars(
    ax: Any,
    labels: list[str],
    stats: list[dict[str, Any]],
    title: str,
    goal: float | None,
    ylabel: str,
) -> None:
    medians = [s["median"] for s in stats]
    low = [s["median"] - s["min"] for s in stats]
    high = [s["max"] - s["median"] for s in stats]
    ax.bar(labels, medians, yerr=[low, high], capsize=4, color="#4c72b0")
    if goal is not None:
        ax.axhline(goal, color="#c44e52", linestyle="--", label=f"goal {goal:g}")
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7, rotation=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", type=Path)
    parser.add_argument("--concurrency", type=Path)
    parser.add_argument("--turns", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/perf.png"))
    args = parser.parse_args()
    panels = [p for p in (args.history, args.concurrency, args.turns) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    column = iter(axes[0])
    if args.history:
        rows = json.loads(args.history.read_text())["results"]
        _bars(
            next(column),
            [f"{r['code']}\n{r['database']}" for r in rows],
            [r["ratio"] for r in rows],
            "history req/s ÷ bare FastAPI req/s (32 conn.)",
            0.10,
            "ratio (median, min-max)",
        )
    if args.concurrency:
        rows = json.loads(args.concurrency.read_text())["results"]
        _bars(
            next(column),
            [f"{r['code']}\n{r['database']} {r['users']}" for r in rows],
            [r["ratio_to_floor"] for r in rows],
            "N concurrent chats ÷ 1 s LLM floor",
            1.3,
            "wall / floor",
        )
    if args.turns:
        rows = json.loads(args.turns.read_text())["results"]
        labels, stats = [], []
        for r in rows:
            labels += [
                f"idle\nsub-batch {r['sub_batch']}",
                f"ingesting\nsub-batch {r['sub_batch']}",
            ]
            stats += [r["idle_p50_ms"], r["ingesting_p50_ms"]]
        _bars(
            next(column),
            labels,
            stats,
            "chat p50 idle vs during a 2,000-chunk ingestion",
            None,
            "ms",
        )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
