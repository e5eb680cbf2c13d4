"""Retrieval quality and latency of the dense, lexical and hybrid modes (issue 11).

Corpus: CPython's own help topics (`pydoc_data.topics`, shipped with every CPython), loaded
through the normal document path (`DocumentService.add`: chunking, titled embedding, the
vector store and the lexical index) as markdown, their reST section underlines turned into
`#` headings, titled by their first heading. Questions: bench/data/questions/pydoc.json,
a third keyword-style with exact identifiers, a third paraphrased, a third combining two
concepts, each with its gold topic. A question is a hit when a retrieved chunk belongs to its
gold topic or to a topic whose text contains the gold topic's (`compound` holds `if`, `while`,
`try`...; `specialnames` holds `customization`...), since that chunk says the same thing.

Reported per mode: hit@1, hit@3 (the chatbot's RAG_TOP_K), MRR@10 over retrieved chunks, and
the store's search latency p50/p99 (the question's embedding is computed once beforehand: it
is the same for every mode). On the local store (SQLite) and through the Pinecone wire fake
(tests/fakes/pinecone.py, the real SDK over HTTP on 127.0.0.1). The full run also measures
what hybrid adds to the dense search's p50 at 100k chunks (synthetic passages, bench/corpus).

    .venv/bin/python -m bench.retrieval_eval [--quick] [--json out.json] [--plot out.png]

Issue 18 (three corpora, cross-validated defaults, answer-absent refusals; bench/retrieval):

    .venv/bin/python -m bench.retrieval_eval --all [--before f8bb696] [--json] [--plot]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import SecretStr
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.config import Settings
from app.core.db import utcnow
from app.documents.live import LiveDocumentsStore
from app.documents.models import Document, DocumentStatus
from app.documents.service import DocumentService, NewDocument
from app.rag.backends.local import LocalEmbedder, LocalVectorStore
from app.rag.hybrid import FusionConfig, HybridStore, RetrievalMode, StoredVectorScorer
from app.rag.lexical import LexicalIndex
from app.rag.protocols import ChunkRecord, Embedder, Matrix, ScoredChunk, VectorStore, Visibility
from bench.harness import fresh_database, machine, percentiles_ms, write_json

QUESTIONS = Path(__file__).resolve().parent / "data" / "questions" / "pydoc.json"
MODES: tuple[RetrievalMode, ...] = ("dense", "lexical", "hybrid")
USER_ID = 1
DEPTH = 10  # MRR@10
HIT_K = 3
SCALE_CHUNKS = 100_000
SCALE_DOCUMENTS = 1_000
SCALE_QUERIES = 200
LATENCY_REPEATS = 3
# Goals of issue 11.
GOAL_HIT_AT_3 = 0.9
GOAL_ADDED_P50_MS = 5.0
PINECONE_INDEX = "retrieval-eval"
PINECONE_KEY = "pc-bench-retrieval"

_UNDERLINE = {"*": "#", "=": "##", "-": "###", "^": "####"}
_CONTAINS_SHARE = 0.8  # a topic holding 80% of another's long lines contains it


@dataclass(frozen=True, slots=True)
class Question:
    kind: str
    topic: str
    question: str


@dataclass(frozen=True, slots=True)
class Topic:
    key: str
    title: str
    markdown: str


def topic_markdown(key: str, text: str) -> Topic:
    """reST headings ("Title" over "*****") become markdown headings; the first is the title."""
    lines = text.splitlines()
    out: list[str] = []
    title = key
    i = 0
    while i < len(lines):
        line = lines[i]
        under = lines[i + 1] if i + 1 < len(lines) else ""
        marker = under[:1]
        if (
            line.strip()
            and marker in _UNDERLINE
            and set(under.strip()) == {marker}
            and len(under.strip()) >= len(line.strip())
        ):
            if title == key:
                title = line.strip()
            out.append(f"{_UNDERLINE[marker]} {line.strip()}")
            i += 2
            continue
        out.append(line)
        i += 1
    return Topic(key, title, "\n".join(out).strip() + "\n")


def load_topics(keys: Sequence[str] | None = None) -> list[Topic]:
    from pydoc_data.topics import topics

    chosen = sorted(topics) if keys is None else list(keys)
    return [topic_markdown(key, topics[key]) for key in chosen]


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    """The pydoc questions that have an answer (the answer-absent ones are for `--all`)."""
    raw = json.loads(path.read_text())
    return [Question(q["kind"], q["gold"][0], q["question"]) for q in raw["questions"] if q["gold"]]


def containers(topics: Sequence[Topic]) -> dict[str, set[str]]:
    """For each topic, itself and the topics whose text contains it (see the docstring)."""

    def long_lines(text: str) -> set[str]:
        return {s for s in (line.strip() for line in text.splitlines()) if len(s) > 30}

    lines = {t.key: long_lines(t.markdown) for t in topics}
    out: dict[str, set[str]] = {}
    for t in topics:
        own = lines[t.key]
        out[t.key] = {t.key} | {
            other
            for other, theirs in lines.items()
            if other != t.key and own and len(own & theirs) / len(own) >= _CONTAINS_SHARE
        }
    return out


class CachingEmbedder:
    """The real embedder, remembering texts: the second ingestion (Pinecone) costs no model
    time and gets exactly the same vectors."""

    def __init__(self, inner: Embedder) -> None:
        self._inner = inner
        self._cache: dict[str, np.ndarray[Any, np.dtype[np.float32]]] = {}

    @property
    def dimension(self) -> int:
        return self._inner.dimension

    async def embed(self, texts: Sequence[str], priority: Any = "interactive") -> Matrix:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = await self._inner.embed(missing)
            self._cache.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)

    async def aclose(self) -> None:
        return None


async def ingest(
    service: DocumentService, topics: Sequence[Topic], contains: dict[str, set[str]]
) -> tuple[dict[str, set[int]], int]:
    """Every topic as a shared markdown document; returns each topic's gold document ids
    (identical topics, such as `if` and `else`, are one document) and the chunk count."""
    document_of: dict[str, int] = {}
    chunks = 0
    for topic in topics:
        document, created = await service.add(
            NewDocument(
                title=topic.title,
                content=topic.markdown,
                content_type="text/markdown",
                filename=f"{topic.key}.md",
                shared=True,
            ),
            owner_id=None,
            background=False,
        )
        if document.status != DocumentStatus.READY:
            raise RuntimeError(f"topic {topic.key} was not indexed: {document.error}")
        document_of[topic.key] = document.id
        chunks += document.chunks if created else 0
    gold = {
        key: {document_of[other] for other in contains[key] if other in document_of}
        for key in document_of
    }
    return gold, chunks


@dataclass(slots=True)
class ModeResult:
    mode: str
    questions: int = 0
    hit_at_1: float = 0.0
    hit_at_3: float = 0.0
    mrr_at_10: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    misses_at_3: list[str] = field(default_factory=list)


def reciprocal_rank(found: Sequence[ScoredChunk], gold: set[int]) -> float:
    return next((1.0 / r for r, c in enumerate(found, start=1) if c.document_id in gold), 0.0)


def _scores(ranks: Sequence[float]) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        "hit_at_1": sum(r >= 1.0 for r in ranks) / n,
        "hit_at_3": sum(r >= 1 / HIT_K for r in ranks) / n,
        "mrr_at_10": sum(ranks) / n,
        "questions": float(len(ranks)),
    }


async def evaluate(
    store: HybridStore,
    questions: Sequence[Question],
    vectors: Matrix,
    gold: dict[str, set[int]],
    mode: RetrievalMode,
) -> ModeResult:
    store.config = replace(store.config, mode=mode)
    ranks: list[float] = []
    seconds: list[float] = []
    by_kind: dict[str, list[float]] = {}
    misses: list[str] = []
    await store.search(
        questions[0].question, vectors[0], top_k=DEPTH, visibility=Visibility.of_user(USER_ID)
    )  # warm
    for question, vector in zip(questions, vectors, strict=True):
        for _ in range(LATENCY_REPEATS):
            start = time.perf_counter()
            found = await store.search(
                question.question, vector, top_k=DEPTH, visibility=Visibility.of_user(USER_ID)
            )
            seconds.append(time.perf_counter() - start)
        rank = reciprocal_rank(found, gold[question.topic])
        ranks.append(rank)
        by_kind.setdefault(question.kind, []).append(rank)
        if rank < 1 / HIT_K:
            misses.append(f"{question.kind}:{question.topic}: {question.question}")
    scores = _scores(ranks)
    latency = np.asarray(seconds) * 1e3
    return ModeResult(
        mode=mode,
        questions=len(ranks),
        hit_at_1=scores["hit_at_1"],
        hit_at_3=scores["hit_at_3"],
        mrr_at_10=scores["mrr_at_10"],
        p50_ms=float(np.percentile(latency, 50)),
        p99_ms=float(np.percentile(latency, 99)),
        by_kind={kind: _scores(r) for kind, r in sorted(by_kind.items())},
        misses_at_3=misses,
    )


@contextmanager
def pinecone_fake() -> Iterator[str]:
    from tests.fakes.pinecone import FakePinecone
    from tests.fakes.server import serve

    fake = FakePinecone(api_key=PINECONE_KEY)
    fake.add_index(PINECONE_INDEX, dimension=384)
    with serve(fake.app) as url:
        yield url


def pinecone_settings(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={
            "vector_store": "pinecone",
            "pinecone_api_key": SecretStr(PINECONE_KEY),
            "pinecone_index": PINECONE_INDEX,
            "pinecone_host": url,
            "pinecone_controller_host": url,
        }
    )


async def run_store(
    label: str,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    embedder: Embedder,
    dense: VectorStore,
    topics: Sequence[Topic],
    questions: Sequence[Question],
    *,
    scorer: StoredVectorScorer | None,
) -> dict[str, Any]:
    store = HybridStore(dense, LexicalIndex(sessions), FusionConfig(), scorer=scorer)
    service = DocumentService(sessions, embedder, store, settings)
    started = time.perf_counter()
    gold, chunks = await ingest(service, topics, containers(topics))
    ingest_seconds = time.perf_counter() - started
    started = time.perf_counter()
    vectors = await embedder.embed([q.question for q in questions])
    embed_ms = (time.perf_counter() - started) * 1e3 / len(questions)
    modes = [await evaluate(store, questions, vectors, gold, mode) for mode in MODES]
    return {
        "store": label,
        "documents": len({d for ids in gold.values() for d in ids}),
        "chunks": chunks,
        "ingest_seconds": ingest_seconds,
        "question_embedding_ms_mean": embed_ms,
        "modes": [asdict(m) for m in modes],
    }


def scale_texts(chunks: int) -> list[str]:
    """`chunks` chunk texts: the help topics' own chunks, repeated (each copy is another
    document), so terms are spread as in real text; the synthetic passages of bench/corpus
    have 290 distinct words, where every term matches a third of all chunks."""
    from app.documents.chunking import chunk_text

    base = [c for t in load_topics() for c in chunk_text(t.markdown)]
    return [base[n % len(base)] for n in range(chunks)]


async def scale_latency(tmp: Path, chunks: int = SCALE_CHUNKS) -> dict[str, Any]:
    """Dense, lexical and hybrid search latency at `chunks` chunks (`scale_texts`, with random
    unit vectors: the dense cost does not depend on their values), asked the eval questions."""
    dimension = 384
    async with fresh_database(tmp / "scale.db") as db:
        now = utcnow()
        async with db.sessions.begin() as session:
            await session.execute(
                insert(Document),
                [
                    {
                        "id": n,
                        "owner_id": None,
                        "shared": True,
                        "title": f"synthetic {n}",
                        "content_type": "text/plain",
                        "content": "",
                        "content_hash": f"{n:064d}",
                        "status": DocumentStatus.READY,
                        "chunks": chunks // SCALE_DOCUMENTS,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in range(1, SCALE_DOCUMENTS + 1)
                ],
            )
        store = HybridStore(
            LocalVectorStore(db.sessions),
            LexicalIndex(db.sessions),
            FusionConfig(),
            scorer=StoredVectorScorer(db.sessions),
        )
        texts = scale_texts(chunks)
        rng = np.random.default_rng(11)
        started = time.perf_counter()
        batch = 2_000
        for start in range(0, chunks, batch):
            matrix = rng.standard_normal((min(batch, chunks - start), dimension)).astype(np.float32)
            matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
            await store.upsert(
                [
                    ChunkRecord(
                        id=f"s{start + i}",
                        document_id=(start + i) % SCALE_DOCUMENTS + 1,
                        owner_id=None,
                        title=f"synthetic {(start + i) % SCALE_DOCUMENTS + 1}",
                        text=texts[start + i],
                        vector=matrix[i],
                    )
                    for i in range(len(matrix))
                ]
            )
        load_seconds = time.perf_counter() - started
        asked = [q.question for q in load_questions()]
        queries = [asked[n % len(asked)] for n in range(SCALE_QUERIES)]
        probes = rng.standard_normal((SCALE_QUERIES, dimension)).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        out: dict[str, Any] = {"chunks": chunks, "load_seconds": load_seconds}
        for mode in MODES:
            store.config = replace(store.config, mode=mode)
            await store.search(
                queries[0], probes[0], top_k=HIT_K, visibility=Visibility.of_user(USER_ID)
            )  # loads
            seconds = []
            for query, probe in zip(queries, probes, strict=True):
                start_time = time.perf_counter()
                await store.search(
                    query, probe, top_k=HIT_K, visibility=Visibility.of_user(USER_ID)
                )
                seconds.append(time.perf_counter() - start_time)
            stats = percentiles_ms(seconds)
            out[mode] = {**stats, "p99_ms": float(np.percentile(np.asarray(seconds) * 1e3, 99))}
        out["hybrid_added_p50_ms"] = out["hybrid"]["p50_ms"] - out["dense"]["p50_ms"]
        await store.aclose()
    return out


async def run(
    *,
    quick: bool,
    topic_keys: Sequence[str] | None = None,
    questions: Sequence[Question] | None = None,
    pinecone: bool = True,
    scale: bool = True,
) -> dict[str, Any]:
    """The whole evaluation; the CI test passes a subset of topics and questions."""
    all_questions = list(questions) if questions is not None else load_questions()
    topics = load_topics(topic_keys)
    keys = {t.key for t in topics}
    asked = [q for q in all_questions if q.topic in keys]
    results: dict[str, Any] = {"questions": len(asked), "topics": len(topics), "stores": []}
    with tempfile.TemporaryDirectory() as tmp:
        async with AsyncExitStack() as stack:
            db = await stack.enter_async_context(fresh_database(Path(tmp) / "eval.db"))
            model = await LocalEmbedder.load(db.settings)
            stack.push_async_callback(model.aclose)
            embedder = CachingEmbedder(model)
            results["stores"].append(
                await run_store(
                    "local (SQLite)",
                    db.sessions,
                    db.settings,
                    embedder,
                    LocalVectorStore(db.sessions),
                    topics,
                    asked,
                    scorer=StoredVectorScorer(db.sessions),
                )
            )
            if pinecone and not quick:
                from app.rag.backends.pinecone import PineconeVectorStore

                with pinecone_fake() as url:
                    async with fresh_database(Path(tmp) / "pinecone.db") as pdb:
                        settings = pinecone_settings(pdb.settings, url)
                        index = await PineconeVectorStore.open(settings)
                        dense = LiveDocumentsStore(index, pdb.sessions)
                        try:
                            results["stores"].append(
                                await run_store(
                                    "Pinecone (wire fake)",
                                    pdb.sessions,
                                    settings,
                                    embedder,
                                    dense,
                                    topics,
                                    asked,
                                    scorer=None,
                                )
                            )
                        finally:
                            await dense.aclose()
        if scale and not quick:
            results["scale"] = await scale_latency(Path(tmp))
    results["goals"] = goals(results)
    return results


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for store in results["stores"]:
        modes = {m["mode"]: m for m in store["modes"]}
        best_single = max(modes["dense"]["hit_at_3"], modes["lexical"]["hit_at_3"])
        best_mrr = max(modes["dense"]["mrr_at_10"], modes["lexical"]["mrr_at_10"])
        hybrid = modes["hybrid"]
        label = store["store"]
        out += [
            {
                "name": f"{label}: hybrid hit@3 > best single mode",
                "measured": hybrid["hit_at_3"],
                "target": f"> {best_single:.3f}",
                "met": hybrid["hit_at_3"] > best_single,
            },
            {
                "name": f"{label}: hybrid MRR@10 > best single mode",
                "measured": hybrid["mrr_at_10"],
                "target": f"> {best_mrr:.3f}",
                "met": hybrid["mrr_at_10"] > best_mrr,
            },
            {
                "name": f"{label}: hybrid hit@3",
                "measured": hybrid["hit_at_3"],
                "target": f">= {GOAL_HIT_AT_3}",
                "met": hybrid["hit_at_3"] >= GOAL_HIT_AT_3,
            },
        ]
    if "scale" in results:
        added = results["scale"]["hybrid_added_p50_ms"]
        out.append(
            {
                "name": f"hybrid adds to dense p50 at {results['scale']['chunks']} chunks (ms)",
                "measured": added,
                "target": f"<= {GOAL_ADDED_P50_MS}",
                "met": added <= GOAL_ADDED_P50_MS,
            }
        )
    return out


def table(results: dict[str, Any]) -> str:
    """The results as the markdown table of docs/retrieval.md."""
    lines = [
        "| store | mode | hit@1 | hit@3 | MRR@10 | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for store in results["stores"]:
        for m in store["modes"]:
            lines.append(
                f"| {store['store']} | {m['mode']} | {m['hit_at_1']:.3f} | {m['hit_at_3']:.3f} "
                f"| {m['mrr_at_10']:.3f} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} |"
            )
    lines += ["", "| store | mode | kind | hit@1 | hit@3 | MRR@10 |", "|---|---|---|---|---|---|"]
    for store in results["stores"]:
        for m in store["modes"]:
            for kind, s in m["by_kind"].items():
                lines.append(
                    f"| {store['store']} | {m['mode']} | {kind} | {s['hit_at_1']:.3f} "
                    f"| {s['hit_at_3']:.3f} | {s['mrr_at_10']:.3f} |"
                )
    if "scale" in results:
        s = results["scale"]
        lines += [
            "",
            f"At {s['chunks']} chunks (local store): "
            + ", ".join(
                f"{mode} p50 {s[mode]['p50_ms']:.2f} ms / p99 {s[mode]['p99_ms']:.2f} ms"
                for mode in MODES
            )
            + f"; hybrid adds {s['hybrid_added_p50_ms']:.2f} ms to the dense p50.",
        ]
    for goal in results["goals"]:
        status = "MET" if goal["met"] else "MISSED"
        lines.append(f"- {goal['name']}: {goal['measured']:.3f} ({goal['target']}): {status}")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stores = results["stores"]
    figure, axes = plt.subplots(1, len(stores), figsize=(5.5 * len(stores), 4), squeeze=False)
    metrics = (("hit_at_1", "hit@1"), ("hit_at_3", "hit@3"), ("mrr_at_10", "MRR@10"))
    width = 0.25
    for axis, store in zip(axes[0], stores, strict=True):
        for n, mode in enumerate(store["modes"]):
            xs = np.arange(len(metrics)) + (n - 1) * width
            values = [mode[key] for key, _ in metrics]
            bars = axis.bar(
                xs, values, width, label=f"{mode['mode']} (p50 {mode['p50_ms']:.1f} ms)"
            )
            axis.bar_label(bars, fmt="%.2f", fontsize=7)
        axis.set_xticks(np.arange(len(metrics)), [label for _, label in metrics])
        axis.set_ylim(0, 1.05)
        axis.axhline(GOAL_HIT_AT_3, color="grey", linewidth=0.8, linestyle="--")
        axis.set_title(
            f"{store['store']}: {results['questions']} questions, {store['chunks']} chunks"
        )
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle("pydoc_data.topics retrieval: dense vs lexical vs hybrid (RRF)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="local store only, no 100k run")
    parser.add_argument("--json", type=Path, help="write the results to this file")
    parser.add_argument("--plot", type=Path, help="write the plot (PNG) to this file")
    parser.add_argument("--scale-only", action="store_true", help="only the 100k-chunk latency")
    parser.add_argument(
        "--all",
        action="store_true",
        help="issue 18: every corpus (pydoc, man, numpy), cross-validated (bench/retrieval)",
    )
    parser.add_argument(
        "--before", metavar="REF", help="with --all: also dense retrieval as commit REF did it"
    )
    parser.add_argument(
        "--corpora", default="pydoc,man,numpy", help="with --all: the corpora (comma-separated)"
    )
    args = parser.parse_args(argv)
    info = machine()
    if args.all:
        from bench.retrieval.run import run_all, write
        from bench.retrieval.run import table as cv_table

        cv = run_all(args.corpora.split(","), before=args.before)
        print(cv_table(cv), flush=True)
        if args.json:
            write({"machine": info, **cv}, args.json)
        if args.plot:
            from bench.retrieval.plot import plot as cv_plot

            cv_plot(cv, args.plot)
        return 0 if all(goal["met"] for goal in cv["goals"]) else 1
    if args.scale_only:
        with tempfile.TemporaryDirectory() as tmp:
            scale = asyncio.run(scale_latency(Path(tmp)))
        print(json.dumps(scale, indent=2), flush=True)
        if args.json:
            write_json(args.json, {"machine": info, "scale": scale})
        return 0
    results = asyncio.run(run(quick=args.quick))
    print(table(results), flush=True)
    if args.json:
        write_json(args.json, {"machine": info, "quick": args.quick, **results})
    if args.plot:
        plot(results, args.plot)
    return 0 if all(goal["met"] for goal in results["goals"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
