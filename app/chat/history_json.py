"""Chat history rows straight to JSON bytes: the shape of `list[MessageRead]`, without building
and re-validating a Pydantic model per message, and without decoding the stored sources only
to encode them again (the history path's largest costs after the database, measured with
bench/perf/profile_history.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from app.chat.repository import HistoryRow


def messages_json(
    rows: Sequence[HistoryRow], feedback: Mapping[int, Mapping[str, object]] | None = None
) -> bytes:
    """Rows of (id, role, content, timestamp, sources_json) as the JSON array of MessageRead,
    with `feedback[id]` (FeedbackRead as JSON) on the rated answers.

    `sources_json` is the stored JSON text, embedded as it is: the chat service writes it from
    `Source` (the fields of SourceRead, nothing else)."""
    feedback = feedback or {}
    return orjson.dumps(
        [
            {
                "id": row.id,
                "role": row.role,
                "content": row.content,
                "timestamp": row.timestamp,
                "sources": None if row.sources is None else orjson.Fragment(row.sources),
                "feedback": feedback.get(row.id),
            }
            for row in rows
        ],
        option=orjson.OPT_UTC_Z,
    )
