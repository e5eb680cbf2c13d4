"""Reciprocal rank fusion: the one way rankings are merged here (Cormack et al. 2009), both
for hybrid search (the dense and the lexical ranking) and for a follow-up's several queries.

    fused(item) = sum over rankings of weight / (k + rank),   ranks counted from 1

It needs no calibration between scores of different kinds (BM25, cosine). `k` is
`RETRIEVAL_RRF_K`: a small k lets the top ranks lead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def reciprocal_rank_fusion(
    rankings: Iterable[tuple[float, Sequence[str]]], *, k: int
) -> list[tuple[str, float]]:
    """`(weight, ids best first)` rankings fused: `(id, fused score)`, best first (ties keep
    the order in which the ids were first met)."""
    fused: dict[str, float] = {}
    for weight, ids in rankings:
        for rank, item in enumerate(ids, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda entry: entry[1], reverse=True)
