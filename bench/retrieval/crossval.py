"""Every default chosen by cross-validation: tune on two corpora, report on the third, rotate.

For each held-out corpus, the configuration (bench.retrieval.evaluate.grid) with the best
mean of hit@3 and MRR@10 over the two other corpora is chosen, and only its figures on the
held-out corpus are reported. A default is kept only if, chosen that way, it beats plain
dense retrieval on every held-out corpus.

The refusal threshold (`RAG_MIN_SCORE`) is calibrated the same way, per mode: on the two
training corpora, the highest threshold that refuses at most `MAX_ANSWERABLE_LOSS` of their
answerable questions; reported on the held-out corpus as the share of answer-absent questions
refused and of answerable ones lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.retrieval.evaluate import (
    CURRENT_HYBRID,
    LEXICAL,
    PLAIN_DENSE,
    TITLED_DENSE,
    Config,
    Prepared,
    Ranked,
    grid,
    rank,
    score,
)

MAX_ANSWERABLE_LOSS = 0.02
DEFAULT_MIN_SCORE = 0.3  # RAG_MIN_SCORE's default
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.0, 0.61, 0.01))


def objective(p: Prepared, ranked: Ranked) -> float:
    s = score(p, ranked)
    return (s.hit_at_3 + s.mrr_at_10) / 2


@dataclass(slots=True)
class Fold:
    held_out: str
    chosen: Config
    train_objective: float
    threshold: float


def calibrate(prepared: Sequence[Prepared], ranked: Sequence[Ranked]) -> float:
    """The highest threshold losing at most MAX_ANSWERABLE_LOSS of the answerable questions
    of every given corpus."""
    best = 0.0
    for t in THRESHOLDS:
        if all(
            score(p, r, t).answerable_refused <= MAX_ANSWERABLE_LOSS
            for p, r in zip(prepared, ranked, strict=True)
        ):
            best = t
    return best


def cross_validate(
    prepared: dict[str, Prepared], configs: Sequence[Config] | None = None
) -> dict[str, Any]:
    configs = list(
        dict.fromkeys([*(configs or grid()), PLAIN_DENSE, TITLED_DENSE, LEXICAL, CURRENT_HYBRID])
    )
    names = list(prepared)
    ranked = {name: {cfg: rank(prepared[name], cfg) for cfg in configs} for name in names}
    objectives = {
        name: {cfg: objective(prepared[name], ranked[name][cfg]) for cfg in configs}
        for name in names
    }
    folds: list[Fold] = []
    rows: list[dict[str, Any]] = []
    for held in names:
        train = [n for n in names if n != held]
        chosen = max(
            configs, key=lambda c: (np.mean([objectives[n][c] for n in train]), -configs.index(c))
        )
        for label, cfg in (
            ("plain dense (title in the lexical index only)", PLAIN_DENSE),
            ("titled dense (the default since titled chunks)", TITLED_DENSE),
            ("lexical", LEXICAL),
            ("hybrid, issue 11 defaults (titled, k=2, w=1.5, 30)", CURRENT_HYBRID),
            ("chosen on the two other corpora", chosen),
        ):
            threshold = (
                calibrate([prepared[n] for n in train], [ranked[n][cfg] for n in train])
                if cfg.mode != "lexical"
                else 0.0
            )
            s = score(prepared[held], ranked[held][cfg], threshold)
            at_default = score(prepared[held], ranked[held][cfg], DEFAULT_MIN_SCORE)
            rows.append(
                {
                    "corpus": held,
                    "role": label,
                    "config": cfg.label,
                    **{k: v for k, v in asdict(s).items() if k != "misses"},
                    "absent_refused_at_default": at_default.absent_refused,
                    "answerable_refused_at_default": at_default.answerable_refused,
                    "misses": s.misses,
                }
            )
        folds.append(
            Fold(held, chosen, float(np.mean([objectives[n][chosen] for n in train])), 0.0)
        )
    # What each configuration family scores held out when its best member is chosen on the
    # two other corpora (the experiments of issue 18, each on its own).
    families: dict[str, Callable[[Config], bool]] = {
        "title: lexical index only (plain vectors)": lambda c: c.vectors == "plain",
        "title: prepended (titled vectors)": lambda c: c.vectors == "titled",
        "title: only when short (<40 tokens)": lambda c: c.vectors == "short40",
        "title: only when short (<80 tokens)": lambda c: c.vectors == "short80",
        "title: separate vector fused (0.3)": lambda c: c.vectors == "fused0.3",
        "title: separate vector fused (0.6)": lambda c: c.vectors == "fused0.6",
        "dense only": lambda c: c.mode == "dense",
        "hybrid, 30 candidates": lambda c: c.mode == "hybrid" and c.candidates == 30,
        "hybrid, 100 candidates then trimmed": lambda c: c.mode == "hybrid" and c.candidates == 100,
        "question only": lambda c: c.views == "q" and c.mode != "lexical",
        "question + keywords views": lambda c: c.views == "q+kw",
        "no per-document aggregation": lambda c: not c.doc_agg and c.mode != "lexical",
        "per-document aggregation": lambda c: bool(c.doc_agg),
    }
    family_rows: list[dict[str, Any]] = []
    for family, member in families.items():
        pool = [c for c in configs if member(c)]
        if not pool:
            continue
        for held in names:
            train = [n for n in names if n != held]
            best = max(
                pool, key=lambda c: (np.mean([objectives[n][c] for n in train]), -configs.index(c))
            )
            s = score(prepared[held], ranked[held][best])
            family_rows.append(
                {
                    "family": family,
                    "corpus": held,
                    "config": best.label,
                    "hit_at_3": s.hit_at_3,
                    "mrr_at_10": s.mrr_at_10,
                }
            )
    everywhere = max(
        configs, key=lambda c: (np.mean([objectives[n][c] for n in names]), -configs.index(c))
    )
    return {
        "configs": len(configs),
        "folds": [
            {
                "held_out": f.held_out,
                "chosen": f.chosen.label,
                "config": asdict(f.chosen),
                "train_objective": f.train_objective,
            }
            for f in folds
        ],
        "rows": rows,
        "families": family_rows,
        "chosen_on_all": {"label": everywhere.label, "config": asdict(everywhere)},
    }
