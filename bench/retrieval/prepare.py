"""Encode (and cache) every text the evaluation needs: `python -m bench.retrieval.prepare`."""

from __future__ import annotations

import sys

from bench.retrieval.corpora import CORPORA, build
from bench.retrieval.index import EmbeddingCache, chunk_corpus


def main(argv: list[str]) -> int:
    cache = EmbeddingCache()
    corpora = [chunk_corpus(name, build(name)) for name in argv or list(CORPORA)]
    # Most needed first: plain and titled chunks (the titled-chunk experiment), then labels.
    for corpus in corpora:
        cache.vectors([c.text for c in corpus.chunks], progress=f"{corpus.name} plain")
        cache.vectors([c.titled for c in corpus.chunks], progress=f"{corpus.name} titled")
    for corpus in corpora:
        cache.vectors(sorted({c.label for c in corpus.chunks}), progress=f"{corpus.name} labels")
    print(f"encoded {cache.encoded} new texts", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
