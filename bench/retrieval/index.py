"""Chunks of a corpus as the app makes them, their vectors (cached on disk) and a lexical
index that ranks as the app's does.

Chunking is the app's own (`chunk_text` at CHUNK_TOKENS=200 / 40 overlap, sections as for an
uploaded markdown file, `markdown_headings`, `source_title`, `embedding_text`). Vectors come
from the app's local model (all-MiniLM-L6-v2, normalised, as `LocalEmbedder` encodes) and are
cached per (model, text) in `bench/results/cache/embeddings.sqlite` (git-ignored), so a sweep
over variants costs no model time after the first run. The lexical index is SQLite FTS5 with
the app's tokenizer, query terms (`query_terms`, `fts5_query`) and BM25 column weights.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.documents.chunking import chunk_text, embedding_text, markdown_headings, source_title
from app.documents.formats import is_sectioned
from app.rag.lexical import HEADING_WEIGHT, TEXT_WEIGHT, TITLE_WEIGHT, fts5_query, query_terms
from app.rag.text import split_sentences
from bench.retrieval.corpora import Doc

CACHE_DIR = Path(__file__).resolve().parents[1] / "results" / "cache"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
CHUNK_TOKENS = 200
OVERLAP_TOKENS = 40
Matrix = np.ndarray[Any, np.dtype[np.float32]]


@dataclass(frozen=True, slots=True)
class Chunk:
    doc: int  # index into Corpus.docs
    title: str  # the source title (document — section), as the stores keep it
    heading: str
    text: str
    titled: str  # embedding_text(): what the app embeds today
    label: str  # the document title and heading alone


@dataclass(slots=True)
class Corpus:
    name: str
    docs: list[Doc]
    chunks: list[Chunk]


def chunk_corpus(name: str, docs: Sequence[Doc]) -> Corpus:
    """Every document as the app ingests a markdown upload; documents with the same text are
    one (the app's content-hash dedupe), the first key kept."""
    kept: list[Doc] = []
    seen: set[str] = set()
    for doc in docs:
        if doc.markdown not in seen:
            seen.add(doc.markdown)
            kept.append(doc)
    sectioned = is_sectioned("text/markdown")
    chunks: list[Chunk] = []
    for n, doc in enumerate(kept):
        texts = chunk_text(
            doc.markdown, max_tokens=CHUNK_TOKENS, overlap_tokens=OVERLAP_TOKENS, sections=sectioned
        )
        headings = markdown_headings(texts) if sectioned else [""] * len(texts)
        for text, heading in zip(texts, headings, strict=True):
            chunks.append(
                Chunk(
                    doc=n,
                    title=source_title(doc.title, heading),
                    heading=heading,
                    text=text,
                    titled=embedding_text(doc.title, heading, text),
                    label=embedding_text(doc.title, heading, "").strip(),
                )
            )
    return Corpus(name, kept, chunks)


class EmbeddingCache:
    """Vectors by sha256(model, text) in SQLite; missing texts are encoded with the app's model."""

    def __init__(self, path: Path = CACHE_DIR / "embeddings.sqlite", model_id: str = MODEL_ID):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS v (k TEXT PRIMARY KEY, vec BLOB)")
        self._model_id = model_id
        self._model: Any = None
        self.encoded = 0

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self._model_id}\0{text}".encode()).hexdigest()

    def _encoder(self) -> Any:
        if self._model is None:
            from app.rag.backends.local.embedder import _load_model, resolve_model_path

            self._model = _load_model(resolve_model_path(self._model_id))
        return self._model

    def vectors(self, texts: Sequence[str], *, progress: str = "") -> Matrix:
        keys = [self._key(t) for t in texts]
        found: dict[str, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            marks = ",".join("?" * len(part))
            found.update(self._db.execute(f"SELECT k, vec FROM v WHERE k IN ({marks})", part))  # noqa: S608
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        started = time.monotonic()
        for start in range(0, len(missing), 64):
            batch = missing[start : start + 64]
            encoded = (
                self._encoder()
                .encode(
                    batch,
                    batch_size=32,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                .astype(np.float32)
            )
            rows = [(self._key(t), v.tobytes()) for t, v in zip(batch, encoded, strict=True)]
            self._db.executemany("INSERT OR REPLACE INTO v VALUES (?, ?)", rows)
            self._db.commit()
            found.update(rows)
            self.encoded += len(batch)
            if progress:
                print(
                    f"  {progress}: {start + len(batch)}/{len(missing)} encoded "
                    f"({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([np.frombuffer(found[k], dtype=np.float32) for k in keys])


class Lexical:
    """The chunks in an in-memory FTS5 table with the app's tokenizer and column weights."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self._db = sqlite3.connect(":memory:")
        self._db.execute(
            "CREATE VIRTUAL TABLE f USING fts5(title, heading, text, "
            "tokenize='porter unicode61 remove_diacritics 2')"
        )
        self._db.executemany(
            "INSERT INTO f(rowid, title, heading, text) VALUES (?, ?, ?, ?)",
            [(n, c.title, c.heading, c.text) for n, c in enumerate(chunks)],
        )

    def search(self, question: str, depth: int) -> list[tuple[int, float]]:
        terms = query_terms(question)
        if not terms:
            return []
        rows = self._db.execute(
            "SELECT rowid, -bm25(f, ?, ?, ?) FROM f WHERE f MATCH ? "
            "ORDER BY bm25(f, ?, ?, ?) LIMIT ?",
            (
                TITLE_WEIGHT,
                HEADING_WEIGHT,
                TEXT_WEIGHT,
                fts5_query(terms),
                TITLE_WEIGHT,
                HEADING_WEIGHT,
                TEXT_WEIGHT,
                depth,
            ),
        ).fetchall()
        return [(int(r), float(s)) for r, s in rows]


def sentences(text: str) -> list[str]:
    """A chunk's sentences (its lines split further), as the local re-ranker scores them."""
    out = [s for line in text.split("\n") for s in split_sentences(line) if len(s.split()) >= 3]
    return out or [text]
