"""`python -m bench.retrieval_eval --all`: every corpus, every mode, cross-validated.

Prints, per corpus (held out) and mode: hit@1, hit@3, MRR@10 over the answerable questions,
and at the refusal threshold calibrated on the two other corpora, the share of answer-absent
questions refused and of answerable ones lost. `--before REF` adds dense retrieval as commit
REF did it (its own chunking, in a temporary worktree) on the same corpora and questions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.retrieval import questions as question_files
from bench.retrieval.corpora import CORPORA, build
from bench.retrieval.crossval import cross_validate
from bench.retrieval.evaluate import Prepared, prepare
from bench.retrieval.index import EmbeddingCache

GOAL_HYBRID_OVER_DENSE = 0.03


def prepare_all(names: Sequence[str], cache: EmbeddingCache) -> dict[str, Prepared]:
    return {name: prepare(name, build(name), question_files.load(name), cache) for name in names}


def run_all(names: Sequence[str] = tuple(CORPORA), before: str | None = None) -> dict[str, Any]:
    cache = EmbeddingCache()
    started = time.monotonic()
    prepared = prepare_all(names, cache)
    results = cross_validate(prepared)
    results["corpora"] = {
        name: {
            "documents": len(p.corpus.docs),
            "chunks": len(p.corpus.chunks),
            "questions": len(p.questions),
            "answerable": sum(q.answerable for q in p.questions),
        }
        for name, p in prepared.items()
    }
    if before:
        from bench.retrieval.before import measure

        results["before"] = {"ref": before, "rows": measure(before, prepared, cache)}
    results["goals"] = goals(results)
    results["seconds"] = time.monotonic() - started
    results["encoded"] = cache.encoded
    return results


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    by = {(r["corpus"], r["role"].split(" (")[0].split(",")[0]): r for r in results["rows"]}
    out = []
    for corpus in {r["corpus"] for r in results["rows"]}:
        chosen = next(
            r for r in results["rows"] if r["corpus"] == corpus and r["role"].startswith("chosen")
        )
        dense = by[(corpus, "plain dense")]
        out.append(
            {
                "name": f"{corpus}: chosen >= plain dense + {GOAL_HYBRID_OVER_DENSE} hit@3",
                "measured": chosen["hit_at_3"] - dense["hit_at_3"],
                "met": chosen["hit_at_3"] >= dense["hit_at_3"] + GOAL_HYBRID_OVER_DENSE - 1e-9,
            }
        )
        for row in results.get("before", {}).get("rows", []):
            if row["corpus"] == corpus:
                out.append(
                    {
                        "name": f"{corpus}: chosen hit@3 >= dense at {results['before']['ref']}",
                        "measured": chosen["hit_at_3"] - row["hit_at_3"],
                        "met": chosen["hit_at_3"] >= row["hit_at_3"] - 1e-9,
                    }
                )
    return sorted(out, key=lambda g: g["name"])


def _rate(row: dict[str, Any], key: str) -> str:
    return f"{row[key]:.2f}" if key in row else "n/a"


def table(results: dict[str, Any]) -> str:
    lines = [
        f"{results['configs']} configurations; each corpus held out in turn, the choice made "
        "on the two others.",
        "",
        "| held-out corpus | configuration | hit@1 | hit@3 | MRR@10 | calibrated threshold | "
        "absent refused | answerable refused | at 0.3: absent / answerable refused |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = list(results["rows"]) + list(results.get("before", {}).get("rows", []))
    for r in sorted(rows, key=lambda r: r["corpus"]):
        threshold = f"{r['threshold']:.2f}" if "threshold" in r else ""
        lines.append(
            f"| {r['corpus']} | {r['role']}: `{r['config']}` | {r['hit_at_1']:.3f} "
            f"| {r['hit_at_3']:.3f} | {r['mrr_at_10']:.3f} | {threshold} "
            f"| {_rate(r, 'absent_refused')} | {_rate(r, 'answerable_refused')} "
            f"| {_rate(r, 'absent_refused_at_default')} / "
            f"{_rate(r, 'answerable_refused_at_default')} |"
        )
    lines += [
        "",
        "Chosen per fold: "
        + "; ".join(f"held out {f['held_out']}: `{f['chosen']}`" for f in results["folds"]),
        f"Chosen on all three: `{results['chosen_on_all']['label']}`",
        "",
    ]
    lines += [
        "| experiment (best member chosen on the two other corpora) | held out | "
        "configuration | hit@3 | MRR@10 |",
        "|---|---|---|---|---|",
    ]
    for r in results["families"]:
        lines.append(
            f"| {r['family']} | {r['corpus']} | `{r['config']}` | {r['hit_at_3']:.3f} "
            f"| {r['mrr_at_10']:.3f} |"
        )
    lines.append("")
    for goal in results["goals"]:
        lines.append(
            f"- {goal['name']}: {goal['measured']:+.3f}: {'MET' if goal['met'] else 'MISSED'}"
        )
    return "\n".join(lines)


def write(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")
