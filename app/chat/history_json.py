"""Chat history rows straight to JSON bytes: the shape of `list[MessageRead]`, without building
and re-validating a Pydantic model per message (the history path's largest cost after the
database, measured with bench/perf/profile_history.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Row

SOURCE_FIELDS = ("document_id", "title", "chunk_id", "score", "snippet")


def _source(source: dict[str, Any]) -> dict[str, Any]:
    # The fields of SourceRead only, score as a float, as the model would give them.
    out = {name: source[name] for name in SOURCE_FIELDS}
    out["score"] = float(out["score"])
    return out


def messages_json(rows: Sequence[Row[Any]]) -> bytes:
    """Rows of (id, role, content, timestamp, sources) as the JSON array of MessageRead."""
    return orjson.dumps(
        [
            {
                "id": row.id,
                "role": row.role,
                "content": row.content,
                "timestamp": row.timestamp,
                "sources": None if row.sources is None else [_source(s) for s in row.sources],
            }
            for row in rows
        ],
        option=orjson.OPT_UTC_Z,
    )
