"""The held-out figures as a bar chart (docs/retrieval.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(results["rows"]) + list(results.get("before", {}).get("rows", []))
    corpora = sorted({r["corpus"] for r in rows})
    roles = list(dict.fromkeys(r["role"] for r in rows))
    figure, axes = plt.subplots(1, len(corpora), figsize=(5.5 * len(corpora), 4.5), squeeze=False)
    width = 0.8 / len(roles)
    for axis, corpus in zip(axes[0], corpora, strict=True):
        for n, role in enumerate(roles):
            row = next((r for r in rows if r["corpus"] == corpus and r["role"] == role), None)
            if row is None:
                continue
            xs = np.arange(2) + (n - (len(roles) - 1) / 2) * width
            bars = axis.bar(xs, [row["hit_at_3"], row["mrr_at_10"]], width, label=role)
            axis.bar_label(bars, fmt="%.2f", fontsize=6)
        axis.set_xticks(np.arange(2), ["hit@3", "MRR@10"])
        axis.set_ylim(0, 1.05)
        axis.set_title(f"held out: {corpus}")
    axes[0][0].legend(loc="lower left", fontsize=6)
    figure.suptitle("Retrieval on held-out corpora (choices made on the two others)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
