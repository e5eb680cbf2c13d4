"""Retrieval configurations evaluated over cached vectors, as the app would rank.

A `Config` names what is compared in issue 18:

* `vectors`: which chunk vectors the dense search uses: `titled` (title and heading
  prepended, the app's default since titled chunks), `plain` (the chunk alone: the title in
  the lexical index only), `short<N>` (titled only when the chunk has fewer than N tokens),
  `fused<W>` (the plain vector's cosine plus W times the title-and-heading vector's: the
  title as a separate vector fused with the content vector).
* `mode`: `dense`, `lexical` or `hybrid` (weighted reciprocal rank fusion, `rrf_k`,
  `dense_weight`, lexical weight 1, each search returning `candidates`).
* `views`: `q` (the question) or `q+kw` (also the question's keywords as a second dense
  query, fused at half weight).
* `doc_agg`: 0 (chunks ranked alone) or the weight with which a document's other candidate
  chunks add to its best chunk's fused score (the best chunks of one document reinforce each
  other); the result is then one chunk per document.

Scores: each returned chunk carries the cosine of the question to the vector the store
holds for it (what `RAG_MIN_SCORE` reads); a question is refused when the first chunk's is
under the threshold. Overlapping chunks of one document are removed as `dedupe_overlapping`
does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from app.rag.lexical import query_terms
from app.rag.text import count_tokens
from bench.retrieval.corpora import Doc
from bench.retrieval.index import Chunk, Corpus, EmbeddingCache, Lexical, Matrix, chunk_corpus
from bench.retrieval.questions import Question, containers, gold_documents

DEPTH = 10  # MRR@10
HIT_K = 3  # hit@3: what RAG_TOP_K=3 puts in the prompt
MAX_CANDIDATES = 100
KEYWORD_VIEW_WEIGHT = 0.5


@dataclass(frozen=True, slots=True)
class Config:
    vectors: str = "titled"
    mode: str = "hybrid"
    rrf_k: int = 2
    dense_weight: float = 1.5
    candidates: int = 30
    views: str = "q"
    doc_agg: float = 0.0

    @property
    def label(self) -> str:
        if self.mode == "lexical":
            return "lexical"
        parts = [self.mode, self.vectors]
        if self.mode == "hybrid":
            parts.append(f"k{self.rrf_k} w{self.dense_weight:g} c{self.candidates}")
        if self.views != "q":
            parts.append(self.views)
        if self.doc_agg:
            parts.append(f"doc{self.doc_agg:g}")
        return " ".join(parts)


# The baselines every result is compared with.
PLAIN_DENSE = Config(vectors="plain", mode="dense")
TITLED_DENSE = Config(vectors="titled", mode="dense")
CURRENT_HYBRID = Config()  # the defaults of issue 11: titled, k=2, dense weight 1.5, 30
LEXICAL = Config(mode="lexical")


@dataclass(slots=True)
class Prepared:
    """A corpus with everything a configuration needs, computed once."""

    corpus: Corpus
    questions: list[Question]
    gold: list[set[int]]
    plain: Matrix
    titled: Matrix
    label: Matrix
    tokens: np.ndarray
    q: Matrix
    kw: Matrix
    lexical: list[list[int]]
    overlaps: set[tuple[int, int]] = field(default_factory=set)
    # Dense rankings (MAX_CANDIDATES deep) per (vectors, view), shared by every configuration.
    dense_memo: dict[tuple[str, str], list[list[int]]] = field(default_factory=dict)
    cosine_memo: dict[str, Matrix] = field(default_factory=dict)

    def dense_ranking(self, vectors: str, view: str) -> list[list[int]]:
        key = (vectors, view)
        if key not in self.dense_memo:
            scores = _dense_scores(self, vectors, self.q if view == "q" else self.kw)
            self.dense_memo[key] = [_top(row, MAX_CANDIDATES) for row in scores]
        return self.dense_memo[key]

    def cosines(self, vectors: str) -> Matrix:
        if vectors not in self.cosine_memo:
            self.cosine_memo[vectors] = self.q @ _stored(self, vectors).T
        return self.cosine_memo[vectors]


def _overlaps(chunks: Sequence[Chunk]) -> set[tuple[int, int]]:
    """Pairs (i, j) of chunks of one document sharing a line (neighbours' overlap)."""
    lines = [{s.strip() for s in c.text.split("\n") if s.strip()} for c in chunks]
    out: set[tuple[int, int]] = set()
    for i in range(len(chunks)):
        for j in range(i + 1, min(i + 4, len(chunks))):
            if chunks[i].doc == chunks[j].doc and lines[i] & lines[j]:
                out.add((i, j))
                out.add((j, i))
    return out


def prepare(
    name: str, docs: Sequence[Doc], questions: Sequence[Question], cache: EmbeddingCache
) -> Prepared:
    corpus = chunk_corpus(name, docs)
    contains = containers(docs)
    gold = [
        gold_documents(q, docs, corpus.docs, contains) if q.answerable else set() for q in questions
    ]
    chunks = corpus.chunks
    labels = sorted({c.label for c in chunks})
    label_vectors = cache.vectors(labels, progress=f"{name} labels")
    row = {text: n for n, text in enumerate(labels)}
    lexical = Lexical(chunks)
    keyword_views = [" ".join(query_terms(q.question)) or q.question for q in questions]
    return Prepared(
        corpus=corpus,
        questions=list(questions),
        gold=gold,
        plain=cache.vectors([c.text for c in chunks], progress=f"{name} plain"),
        titled=cache.vectors([c.titled for c in chunks], progress=f"{name} titled"),
        label=label_vectors[[row[c.label] for c in chunks]],
        tokens=np.asarray([count_tokens(c.text) for c in chunks]),
        q=cache.vectors([q.question for q in questions], progress=f"{name} questions"),
        kw=cache.vectors(keyword_views, progress=f"{name} keyword views"),
        lexical=[[n for n, _ in lexical.search(q.question, MAX_CANDIDATES)] for q in questions],
        overlaps=_overlaps(chunks),
    )


def _stored(p: Prepared, vectors: str) -> Matrix:
    """The vector the store holds per chunk for this variant (`fused` stores the plain one
    and a label vector beside it)."""
    if vectors == "titled":
        return p.titled
    if vectors.startswith("short"):
        short = (p.tokens < int(vectors[5:]))[:, None]
        return np.where(short, p.titled, p.plain)
    return p.plain


def _dense_scores(p: Prepared, vectors: str, query: Matrix) -> Matrix:
    """Chunk scores (questions x chunks) of the dense search for this variant."""
    scores = query @ _stored(p, vectors).T
    if vectors.startswith("fused"):
        scores = scores + float(vectors[5:]) * (query @ p.label.T)
    return scores


def _top(scores: np.ndarray, depth: int) -> list[int]:
    part = np.argpartition(-scores, min(depth, len(scores) - 1))[:depth]
    return [int(i) for i in part[np.argsort(-scores[part], kind="stable")]]


def _dedupe(order: Sequence[int], p: Prepared) -> list[int]:
    kept: list[int] = []
    for chunk in order:
        if any((chunk, other) in p.overlaps for other in kept):
            continue
        kept.append(chunk)
    return kept


@dataclass(slots=True)
class Ranked:
    """Per question: the returned chunks (best first, at most DEPTH) and the first one's cosine."""

    chunks: list[list[int]]
    top_score: list[float]


def rank(p: Prepared, cfg: Config) -> Ranked:
    cos = p.cosines(cfg.vectors)
    dense_q = p.dense_ranking(cfg.vectors, "q") if cfg.mode != "lexical" else None
    dense_kw = (
        p.dense_ranking(cfg.vectors, "kw")
        if cfg.views == "q+kw" and cfg.mode != "lexical"
        else None
    )
    out = Ranked([], [])
    for n in range(len(p.questions)):
        depth = max(DEPTH, cfg.candidates)
        rankings: list[tuple[float, list[int]]] = []
        if dense_q is not None:
            weight = cfg.dense_weight if cfg.mode == "hybrid" else 1.0
            rankings.append((weight, dense_q[n][:depth]))
            if dense_kw is not None:
                rankings.append((weight * KEYWORD_VIEW_WEIGHT, dense_kw[n][:depth]))
        if cfg.mode in ("hybrid", "lexical"):
            rankings.append((1.0, p.lexical[n][:depth]))
        k = cfg.rrf_k if len(rankings) > 1 else 0
        fused: dict[int, float] = {}
        for weight, ids in rankings:
            for r, chunk in enumerate(ids, start=1):
                fused[chunk] = fused.get(chunk, 0.0) + weight / (k + r)
        order = sorted(fused, key=lambda c: fused[c], reverse=True)
        if cfg.doc_agg:
            best: dict[int, int] = {}
            total: dict[int, float] = {}
            for chunk in order:
                doc = p.corpus.chunks[chunk].doc
                if doc not in best:
                    best[doc] = chunk
                    total[doc] = fused[chunk]
                else:
                    total[doc] += cfg.doc_agg * fused[chunk]
            order = [best[d] for d in sorted(total, key=lambda d: total[d], reverse=True)]
        kept = _dedupe(order, p)[:DEPTH]
        out.chunks.append(kept)
        out.top_score.append(float(cos[n, kept[0]]) if kept else -1.0)
    return out


@dataclass(slots=True)
class Scores:
    hit_at_1: float
    hit_at_3: float
    mrr_at_10: float
    answerable: int
    # Answer-absent questions refused (no chunk at or above the threshold), and answerable
    # questions refused by mistake, at `threshold`.
    threshold: float
    absent_refused: float
    answerable_refused: float
    absent: int
    by_kind: dict[str, float] = field(default_factory=dict)  # hit@3 per kind
    misses: list[str] = field(default_factory=list)


def first_hit(chunks: Sequence[int], gold: set[int], p: Prepared) -> float:
    """Reciprocal rank of the first returned chunk of a gold document (0 if none)."""
    for r, chunk in enumerate(chunks, start=1):
        if p.corpus.chunks[chunk].doc in gold:
            return 1.0 / r
    return 0.0


def score(p: Prepared, ranked: Ranked, threshold: float = 0.0) -> Scores:
    ranks: list[float] = []
    kinds: dict[str, list[float]] = {}
    misses: list[str] = []
    refused_absent = refused_answerable = absent = 0
    for n, q in enumerate(p.questions):
        refused = ranked.top_score[n] < threshold
        if not q.answerable:
            absent += 1
            refused_absent += refused
            continue
        refused_answerable += refused
        rr = 0.0 if refused else first_hit(ranked.chunks[n], p.gold[n], p)
        ranks.append(rr)
        kinds.setdefault(q.kind, []).append(rr)
        if rr < 1 / HIT_K:
            misses.append(f"{q.kind}: {q.question}")
    count = max(len(ranks), 1)
    return Scores(
        hit_at_1=sum(r >= 1.0 for r in ranks) / count,
        hit_at_3=sum(r >= 1 / HIT_K for r in ranks) / count,
        mrr_at_10=sum(ranks) / count,
        answerable=len(ranks),
        threshold=threshold,
        absent_refused=refused_absent / max(absent, 1),
        answerable_refused=refused_answerable / count,
        absent=absent,
        by_kind={k: sum(r >= 1 / HIT_K for r in v) / len(v) for k, v in sorted(kinds.items())},
        misses=misses,
    )


def grid() -> list[Config]:
    """Every configuration the cross-validation chooses among: the vector variants alone
    (dense) and under every fusion setting; then the recall experiments (the keyword view,
    per-document aggregation, both) on each variant, dense and with the fusions that lead."""
    variants = ("titled", "plain", "short40", "short80", "fused0.3", "fused0.6")
    configs: list[Config] = [LEXICAL]
    for vectors in variants:
        configs.append(Config(vectors, "dense"))
        for rrf_k in (2, 10, 60):
            for dense_weight in (1.0, 1.5, 2.0):
                for candidates in (30, 100):
                    configs.append(Config(vectors, "hybrid", rrf_k, dense_weight, candidates))
        for views, doc_agg in (("q+kw", 0.0), ("q", 0.3), ("q+kw", 0.3)):
            configs.append(Config(vectors, "dense", views=views, doc_agg=doc_agg))
            for rrf_k in (2, 10):
                for candidates in (30, 100):
                    configs.append(
                        Config(
                            vectors,
                            "hybrid",
                            rrf_k,
                            1.5,
                            candidates,
                            views=views,
                            doc_agg=doc_agg,
                        )
                    )
    return configs
