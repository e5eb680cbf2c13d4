"""A bounded run of bench/retrieval_eval.py with the real model: the help topics of at most
4,000 characters (53 documents) and the questions about them, on the local store. The floors
sit a little under what this subset measures (docs/retrieval.md), so a real regression in the
lexical index, the fusion or the titled chunks fails here."""

from __future__ import annotations

from pydoc_data.topics import topics
from typing import Any

import pytest

from bench.retrieval_eval import load_questions, run

SMALL_TOPIC_CHARS = 4_000
FLOOR_HYBRID_HIT_AT_3 = 0.8
FLOOR_HYBRID_MRR = 0.7

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
async def results() -> dict[str, Any]:
    keys = sorted(k for k, text in topics.items() if len(text) <= SMALL_TOPIC_CHARS)
    return await run(quick=True, topic_keys=keys, questions=load_questions(), pinecone=False)


def _modes(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mode"]: m for m in results["stores"][0]["modes"]}


async def test_eval_subset_asks_every_kind_of_question(results: dict[str, Any]) -> None:
    kinds = {kind for m in _modes(results).values() for kind in m["by_kind"]}

    assert results["questions"] >= 25
    assert kinds == {"keyword", "paraphrase", "combined"}


async def test_eval_subset_hybrid_stays_above_its_floor(results: dict[str, Any]) -> None:
    hybrid = _modes(results)["hybrid"]

    assert hybrid["hit_at_3"] >= FLOOR_HYBRID_HIT_AT_3, hybrid["misses_at_3"]
    assert hybrid["mrr_at_10"] >= FLOOR_HYBRID_MRR


async def test_eval_subset_hybrid_at_least_matches_each_single_mode(
    results: dict[str, Any],
) -> None:
    modes = _modes(results)

    for single in ("dense", "lexical"):
        assert modes["hybrid"]["hit_at_3"] >= modes[single]["hit_at_3"], single
