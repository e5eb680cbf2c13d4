"""The question files of bench/data/questions/ and what counts as a hit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.retrieval.corpora import Doc

QUESTIONS_DIR = Path(__file__).resolve().parents[1] / "data" / "questions"
KINDS = ("keyword", "paraphrase", "multihop", "absent")
_CONTAINS_SHARE = 0.8  # a document holding 80% of another's long lines contains it


@dataclass(frozen=True, slots=True)
class Question:
    kind: str
    gold: tuple[str, ...]  # document keys; empty when the corpus cannot answer it
    question: str

    @property
    def answerable(self) -> bool:
        return bool(self.gold)


def load(corpus: str) -> list[Question]:
    raw = json.loads((QUESTIONS_DIR / f"{corpus}.json").read_text())
    return [Question(q["kind"], tuple(q["gold"]), q["question"]) for q in raw["questions"]]


def containers(docs: Sequence[Doc]) -> dict[str, set[str]]:
    """Each document's key with the keys of the documents whose text contains it: pydoc's
    `compound` holds `if`, `while`, `try`...; such a chunk says the same thing."""

    def long_lines(text: str) -> set[str]:
        return {s for s in (line.strip() for line in text.splitlines()) if len(s) > 30}

    lines = {d.key: long_lines(d.markdown) for d in docs}
    out: dict[str, set[str]] = {}
    for d in docs:
        own = lines[d.key]
        out[d.key] = {d.key} | {
            other
            for other, theirs in lines.items()
            if other != d.key and own and len(own & theirs) / len(own) >= _CONTAINS_SHARE
        }
    return out


def gold_documents(
    question: Question, docs: Sequence[Doc], built: Sequence[Doc], contains: dict[str, set[str]]
) -> set[int]:
    """Indexes (into `built`, the deduplicated documents) of the documents that answer it;
    `docs` is the corpus before its identical documents were merged, `contains` its
    `containers`."""
    by_text = {d.markdown: n for n, d in enumerate(built)}
    keys = {k for g in question.gold for k in contains.get(g, {g})}
    missing = [g for g in question.gold if g not in contains]
    if missing:
        raise ValueError(f"gold document(s) {missing} not in the corpus: {question.question}")
    return {by_text[d.markdown] for d in docs if d.key in keys}
