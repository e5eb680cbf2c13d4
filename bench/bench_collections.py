"""The local store's in-memory search for a caller in many collections: the same number of
chunks held in N collection blocks (one matrix product per block the caller may see) versus
one block, interleaved so that both see the same machine load; medians of 200 queries.

    .venv/bin/python -m bench.bench_collections
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from app.rag.backends.local.store import LocalVectorStore, _Block, _Index, group_of
from app.rag.protocols import Vector, Visibility

DIMENSION = 384
REPEATS = 200
SHAPES = ((10, 1_000), (100, 100), (100, 1_000))


def _index(groups: list[int], per_group: int, rng: np.random.Generator) -> _Index:
    blocks = {}
    for n, group in enumerate(groups):
        matrix = rng.normal(size=(per_group, DIMENSION)).astype(np.float32)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        seqs = np.arange(n * per_group, (n + 1) * per_group, dtype=np.int64)
        blocks[group] = _Block(matrix, seqs)
    return _Index(1, 0, len(groups) * per_group, blocks)


def main() -> None:
    rng = np.random.default_rng(0)
    query: Vector = rng.normal(size=DIMENSION).astype(np.float32)
    query /= np.linalg.norm(query)
    for collections, per_collection in SHAPES:
        total = collections * per_collection
        spread = _index([group_of(None, c) for c in range(1, collections + 1)], per_collection, rng)
        single = _index([7], total, rng)
        in_collections = Visibility.of_collections(range(1, collections + 1))
        private = Visibility.of_user(7)
        timings: dict[str, list[float]] = {"collections": [], "one block": []}
        for _ in range(REPEATS):
            for name, index, visibility in (
                ("collections", spread, in_collections),
                ("one block", single, private),
            ):
                start = time.perf_counter()
                LocalVectorStore._search(index, query, 5, visibility)
                timings[name].append(time.perf_counter() - start)
        medians = {name: statistics.median(t) * 1e3 for name, t in timings.items()}
        print(
            f"{total:>7} chunks in {collections:>3} collections: "
            f"{medians['collections']:.2f} ms; in one block: {medians['one block']:.2f} ms"
        )


if __name__ == "__main__":
    main()
