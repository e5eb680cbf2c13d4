"""`--before REF`: an older commit's own chunking run on today's corpora, in a temporary
`git worktree` (removed afterwards; nothing of it is committed).

The older code is imported in a subprocess whose path starts at the worktree, and asked for
what it would embed for each document: its `chunk_text` (with sections if it has them and
treats markdown as sectioned) and, if it had titled chunks, its `embedding_text` under the
document title and `markdown_headings`. Those texts are embedded with the same model (through
the same cache) and searched as its local store did: brute-force cosine, top 10, no overlap
dedupe when the older hybrid module has none. Gold documents and metrics are today's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench.retrieval.evaluate import DEPTH, Prepared, Ranked, score
from bench.retrieval.index import EmbeddingCache

REPO = Path(__file__).resolve().parents[2]
GIT = shutil.which("git") or "git"

# Runs inside the older tree: prints [[doc index, text, embedded text], ...] as JSON.
_SCRIPT = r"""
import inspect, json, sys
from app.documents import chunking
docs = json.load(open(sys.argv[1]))
params = inspect.signature(chunking.chunk_text).parameters
sectioned = False
try:
    from app.documents.formats import is_sectioned
    sectioned = is_sectioned("text/markdown")
except Exception:
    pass
out = []
for n, (title, markdown) in enumerate(docs):
    kwargs = {"max_tokens": 200, "overlap_tokens": 40}
    if "sections" in params:
        kwargs["sections"] = sectioned
    texts = chunking.chunk_text(markdown, **kwargs)
    if hasattr(chunking, "embedding_text"):
        headings = (
            chunking.markdown_headings(texts)
            if hasattr(chunking, "markdown_headings") and (sectioned or "sections" not in params)
            else [""] * len(texts)
        )
        embedded = [chunking.embedding_text(title, h, t) for h, t in zip(headings, texts)]
    else:
        embedded = texts
    out.extend([n, t, e] for t, e in zip(texts, embedded))
json.dump(out, sys.stdout)
"""


def older_chunks(ref: str, prepared: dict[str, Prepared]) -> dict[str, list[list[Any]]]:
    with tempfile.TemporaryDirectory(prefix="retrieval-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(  # noqa: S603 - fixed argv; ref is the operator's own argument
            [GIT, "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref],
            check=True,
            capture_output=True,
        )
        try:
            out: dict[str, list[list[Any]]] = {}
            for name, p in prepared.items():
                docs = Path(tmp) / f"{name}.json"
                docs.write_text(json.dumps([[d.title, d.markdown] for d in p.corpus.docs]))
                result = subprocess.run(  # noqa: S603 - our own interpreter and script
                    [sys.executable, "-c", _SCRIPT, str(docs)],
                    cwd=tree,
                    env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": tmp},
                    check=True,
                    capture_output=True,
                )
                out[name] = json.loads(result.stdout)
            return out
        finally:
            subprocess.run(  # noqa: S603 - fixed argv
                [GIT, "-C", str(REPO), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def measure(ref: str, prepared: dict[str, Prepared], cache: EmbeddingCache) -> list[dict[str, Any]]:
    """Dense retrieval as `ref` did it, on each prepared corpus."""
    rows = []
    for name, chunks in older_chunks(ref, prepared).items():
        p = prepared[name]
        vectors = cache.vectors([c[2] for c in chunks], progress=f"{name} at {ref}")
        docs = [int(c[0]) for c in chunks]
        scores = p.q @ vectors.T
        ranked = Ranked([], [])
        # Today's metrics read chunks by index into p.corpus.chunks; map each older chunk to a
        # stand-in index of a chunk of the same document.
        first_of: dict[int, int] = {}
        for n, c in enumerate(p.corpus.chunks):
            first_of.setdefault(c.doc, n)
        for row in scores:
            top = np.argsort(-row, kind="stable")[:DEPTH]
            ranked.chunks.append([first_of[docs[i]] for i in top])
            ranked.top_score.append(float(row[top[0]]))
        s = score(p, ranked)
        rows.append(
            {
                "corpus": name,
                "role": f"dense at {ref} (its own chunking)",
                "config": f"dense @ {ref}",
                "chunks": len(chunks),
                # No refusal figures: the older code's threshold is not what is compared.
                **{
                    k: v
                    for k, v in asdict(s).items()
                    if k not in ("misses", "threshold", "absent_refused", "answerable_refused")
                },
            }
        )
    return rows
