"""Follow-up retrieval: hit@3 of the second question of two-turn dialogues, with the
conversation as memory against without, on the embedded defaults (MiniLM, the store the app
builds (`RETRIEVAL_MODE`, hybrid by default, over the local vector store), the extractive
generator and its model-free follow-up rewrite).

Each dialogue (bench/data/followup.json) asks about a topic, gets the extractive answer, then
asks a follow-up that names none of the topic's key terms ("And how many of those roll into
next year?"). "Without" retrieves the follow-up alone, as every question was before
conversations; "with" is what a chat turn does now (`RagPipeline.retrieve_with_memory`).
The full run adds synthetic distractor passages (bench/corpus.py) to the knowledge base and
also measures the dense-only retrieval mode.

With an LLM (`condense="llm"`) a follow-up is condensed by a model call only when the rules
say it leans on the conversation. The "condensing gate" rows count, on the same dialogues and
index, how many turns with memory skip that call, and compare hit@3 with the call made on
every turn. No model runs offline, so the call is answered by `RewriteStandIn`: the previous
question and the follow-up joined, the rewrite that wins on follow-ups (see
docs/benchmarks.md); the rows measure what skipping changes, not a model's rewriting.

    .venv/bin/python -m bench.bench_followup [--quick] [--json out.json]
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.documents.models import Document, DocumentStatus
from app.rag.backends.local import LocalEmbedder
from app.rag.factory import build_generator, build_store, pipeline_config
from app.rag.memory import CONDENSE_SYSTEM, LLMCondenser
from app.rag.pipeline import RagPipeline
from app.rag.protocols import (
    ChatTurn,
    ChunkRecord,
    GenerationRequest,
    Generator,
    VectorStore,
    Visibility,
)
from bench import corpus
from bench.harness import Goal, Result, bench_settings, cli, fresh_database

DATA = Path(__file__).resolve().parent / "data" / "followup.json"
USER_ID = 1
GOAL_WITH_MEMORY = 0.8
GOAL_GAIN = 0.3
DISTRACTORS = {False: 400, True: 0}
# The change-of-topic check pairs each dialogue with the one this many places later.
SWITCH_OFFSET = 7


@dataclass(frozen=True, slots=True)
class Dialogue:
    doc: str
    first: str
    followup: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FollowupSet:
    documents: dict[str, str]
    dialogues: list[Dialogue]


def load_set(path: Path = DATA) -> FollowupSet:
    raw = json.loads(path.read_text())
    dialogues = [
        Dialogue(d["doc"], d["first"], d["followup"], tuple(d["keys"])) for d in raw["dialogues"]
    ]
    return FollowupSet(dict(raw["documents"]), dialogues)


@dataclass(slots=True)
class Evaluation:
    dialogues: int = 0
    first_hits: int = 0
    with_memory_hits: int = 0
    without_memory_hits: int = 0
    switch_hits: int = 0
    misses_with_memory: list[str] = field(default_factory=list)

    @property
    def with_memory(self) -> float:
        return self.with_memory_hits / self.dialogues

    @property
    def without_memory(self) -> float:
        return self.without_memory_hits / self.dialogues

    @property
    def first(self) -> float:
        return self.first_hits / self.dialogues

    @property
    def switch(self) -> float:
        return self.switch_hits / self.dialogues


@dataclass(frozen=True, slots=True)
class GateRun:
    """One evaluation with the LLM condenser: its hit rates and how many calls it made."""

    evaluation: Evaluation
    calls: int

    @property
    def turns(self) -> int:
        """Turns with memory: each dialogue's follow-up and its change of topic."""
        return 2 * self.evaluation.dialogues


@dataclass(frozen=True, slots=True)
class GateEvaluation:
    always: GateRun
    when_needed: GateRun

    @property
    def skipped(self) -> int:
        return self.when_needed.turns - self.when_needed.calls


class RewriteStandIn:
    """A generator for the condensing call: answers it with the previous user question and the
    follow-up joined (no model runs offline), counting the calls; other requests go to
    `inner` (the extractive generator)."""

    def __init__(self, inner: Generator) -> None:
        self.inner = inner
        self.calls = 0

    @staticmethod
    def is_condense(request: GenerationRequest) -> bool:
        return bool(request.messages) and request.messages[0].content == CONDENSE_SYSTEM

    async def generate(self, request: GenerationRequest) -> str:
        if not self.is_condense(request):
            return await self.inner.generate(request)
        self.calls += 1
        conversation = request.messages[1].content.split("\n\nLast question:", 1)[0]
        users = [line for line in conversation.splitlines() if line.startswith("User: ")]
        previous = users[-1].removeprefix("User: ") if users else ""
        return f"{previous} {request.question}".strip()

    def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        return self.inner.stream(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def evaluate_gate(pipeline: RagPipeline, dialogues: list[Dialogue]) -> GateEvaluation:
    """The dialogues with the LLM condenser (answered by `RewriteStandIn`), called on every
    turn with memory and then only when the rules say the question needs it."""
    rewriter = RewriteStandIn(pipeline.generator)
    config = dataclasses.replace(pipeline.config, condense="llm")
    runs = []
    for only_when_needed in (False, True):
        gated = RagPipeline(pipeline.embedder, pipeline.store, rewriter, config)
        gated.condenser = LLMCondenser(
            rewriter,
            max_tokens=config.condense_max_tokens,
            deadline_seconds=config.condense_deadline_seconds,
            only_when_needed=only_when_needed,
        )
        rewriter.calls = 0
        evaluation = await evaluate(gated, dialogues)
        runs.append(GateRun(evaluation, rewriter.calls))
    return GateEvaluation(*runs)


async def index_documents(
    sessions: async_sessionmaker[AsyncSession],
    store: VectorStore,
    embedder: LocalEmbedder,
    documents: dict[str, str],
    distractors: list[str],
) -> None:
    """The named documents (one chunk each, titled by name) and unnamed distractors, shared."""
    items = [*documents.items(), *((f"distractor-{n}", t) for n, t in enumerate(distractors))]
    async with sessions.begin() as session:
        session.add_all(
            Document(
                id=n,
                owner_id=None,
                shared=True,
                title=name,
                content_type="text/plain",
                content=text,
                content_hash=hashlib.sha256(text.encode()).hexdigest(),
                status=DocumentStatus.READY,
                chunks=1,
            )
            for n, (name, text) in enumerate(items, start=1)
        )
    vectors = await embedder.embed([text for _, text in items])
    await store.upsert(
        [
            ChunkRecord(
                id=name,
                document_id=n,
                owner_id=None,
                title=name,
                text=text,
                vector=vectors[n - 1],
            )
            for n, (name, text) in enumerate(items, start=1)
        ]
    )


async def evaluate(pipeline: RagPipeline, dialogues: list[Dialogue]) -> Evaluation:
    """hit@top_k of each follow-up with memory (the first question and its answer) and alone;
    and, as a check that memory does not get in the way, of a change of topic: another
    dialogue's first question asked as the second turn."""
    result = Evaluation()
    for n, dialogue in enumerate(dialogues):
        result.dialogues += 1
        first = await pipeline.answer(dialogue.first, visibility=Visibility.of_user(USER_ID))
        result.first_hits += dialogue.doc in {s.title for s in first.sources}
        memory = [ChatTurn("user", dialogue.first), ChatTurn("assistant", first.text)]
        with_memory = await pipeline.retrieve_with_memory(
            dialogue.followup, visibility=Visibility.of_user(USER_ID), memory=memory
        )
        alone = await pipeline.retrieve(dialogue.followup, visibility=Visibility.of_user(USER_ID))
        hit = dialogue.doc in {c.title for c in with_memory}
        result.with_memory_hits += hit
        result.without_memory_hits += dialogue.doc in {c.title for c in alone}
        if not hit:
            result.misses_with_memory.append(dialogue.doc)
        other = dialogues[(n + SWITCH_OFFSET) % len(dialogues)]
        switched = await pipeline.retrieve_with_memory(
            other.first, visibility=Visibility.of_user(USER_ID), memory=memory
        )
        result.switch_hits += other.doc in {c.title for c in switched}
    return result


async def measure(
    embedder: LocalEmbedder,
    followups: FollowupSet,
    distractors: list[str],
    *,
    gate: bool = False,
    **settings: Any,
) -> tuple[Evaluation, RagPipeline, GateEvaluation | None]:
    """One evaluation on a fresh database, with the pipeline the app would build; with `gate`,
    the condensing gate's too, on the same index."""
    with tempfile.TemporaryDirectory() as tmp:
        async with fresh_database(Path(tmp) / "followup.db", **settings) as db:
            store = await build_store(db.settings, db.sessions)
            try:
                await index_documents(
                    db.sessions, store, embedder, followups.documents, distractors
                )
                generator = build_generator(db.settings, embedder)
                pipeline = RagPipeline(embedder, store, generator, pipeline_config(db.settings))
                evaluation = await evaluate(pipeline, followups.dialogues)
                gated = await evaluate_gate(pipeline, followups.dialogues) if gate else None
                return evaluation, pipeline, gated
            finally:
                await store.aclose()


async def run(quick: bool) -> Result:
    followups = load_set()
    distractor_count = DISTRACTORS[quick]
    distractors = corpus.passages(distractor_count, words=40)
    embedder = await LocalEmbedder.load(bench_settings("sqlite+aiosqlite://"))
    try:
        start = time.perf_counter()
        evaluation, pipeline, gate = await measure(embedder, followups, distractors, gate=True)
        seconds = time.perf_counter() - start
        assert gate is not None
        dense = None
        if not quick:
            dense, _, _ = await measure(embedder, followups, distractors, retrieval_mode="dense")
    finally:
        await embedder.aclose()
    config = pipeline.config
    gain = evaluation.with_memory - evaluation.without_memory
    result = Result(
        name="followup",
        description="hit@3 of follow-up questions with conversation memory vs without",
        params={
            "dialogues": evaluation.dialogues,
            "documents": len(followups.documents),
            "distractor_passages": distractor_count,
            "top_k": config.top_k,
            "min_score": config.min_score,
            "condense": config.condense,
            "retrieval_mode": bench_settings("sqlite+aiosqlite://").retrieval_mode,
        },
        metrics={
            "hit_at_3_with_memory": evaluation.with_memory,
            "hit_at_3_without_memory": evaluation.without_memory,
            "gain": gain,
            "hit_at_3_first_question": evaluation.first,
            "hit_at_3_topic_switch": evaluation.switch,
            "seconds": seconds,
        },
    )
    always, when_needed = gate.always, gate.when_needed
    result.metrics.update(
        {
            "condense_turns": when_needed.turns,
            "condense_calls_always": always.calls,
            "condense_calls_when_needed": when_needed.calls,
            "condense_skipped": gate.skipped,
            "condense_always_hit_at_3": always.evaluation.with_memory,
            "condense_when_needed_hit_at_3": when_needed.evaluation.with_memory,
            "condense_always_topic_switch": always.evaluation.switch,
            "condense_when_needed_topic_switch": when_needed.evaluation.switch,
        }
    )
    if dense is not None:
        result.metrics["dense_hit_at_3_with_memory"] = dense.with_memory
        result.metrics["dense_hit_at_3_without_memory"] = dense.without_memory
        result.metrics["dense_hit_at_3_topic_switch"] = dense.switch
    result.headline(
        "follow-up hit@3, memory vs none",
        evaluation.with_memory,
        max(evaluation.without_memory, 1e-9),
        "hit rate",
    )
    result.row(
        "follow-up hit@3 with memory",
        f"{evaluation.with_memory:.3f} ({evaluation.with_memory_hits}/{evaluation.dialogues})",
    )
    result.row(
        "follow-up hit@3 without memory",
        f"{evaluation.without_memory:.3f} "
        f"({evaluation.without_memory_hits}/{evaluation.dialogues}) (baseline)",
    )
    result.row(
        "first question hit@3",
        f"{evaluation.first:.3f} ({evaluation.first_hits}/{evaluation.dialogues})",
    )
    result.row(
        "change of topic hit@3 with memory",
        f"{evaluation.switch:.3f} ({evaluation.switch_hits}/{evaluation.dialogues})",
    )
    result.row(
        "knowledge base", f"{len(followups.documents)} documents + {distractor_count} distractors"
    )
    if dense is not None:
        result.row(
            "RETRIEVAL_MODE=dense: with / without / topic",
            f"{dense.with_memory:.3f} / {dense.without_memory:.3f} / {dense.switch:.3f}",
        )
    result.row(
        "LLM condensing: calls skipped",
        f"{gate.skipped} of {when_needed.turns} turns with memory "
        f"({always.calls} calls when always, {when_needed.calls} when needed)",
    )
    result.row(
        "LLM condensing: follow-up hit@3 always / when needed",
        f"{always.evaluation.with_memory:.3f} / {when_needed.evaluation.with_memory:.3f}",
    )
    result.row(
        "LLM condensing: change of topic always / when needed",
        f"{always.evaluation.switch:.3f} / {when_needed.evaluation.switch:.3f}",
    )
    result.row(
        "time",
        f"{seconds:.1f} s for {evaluation.dialogues} dialogues (two turns each), three times",
    )
    result.goals.append(
        Goal(
            "hit@3 with memory",
            evaluation.with_memory,
            f">= {GOAL_WITH_MEMORY}",
            evaluation.with_memory >= GOAL_WITH_MEMORY,
        )
    )
    result.goals.append(Goal("gain over without", gain, f">= +{GOAL_GAIN}", gain >= GOAL_GAIN))
    result.goals.append(
        Goal(
            "condensing only when needed keeps follow-up hit@3",
            when_needed.evaluation.with_memory - always.evaluation.with_memory,
            ">= 0",
            when_needed.evaluation.with_memory >= always.evaluation.with_memory,
        )
    )
    if evaluation.misses_with_memory:
        result.notes.append("missed with memory: " + ", ".join(evaluation.misses_with_memory))
    return result


if __name__ == "__main__":
    cli(run)
