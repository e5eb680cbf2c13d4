"""A fake text-embeddings-inference server: `POST /rerank`, TEI's wire format, for tests.

Request (what TEI accepts): `{"query": str, "texts": [str, ...], "truncate": bool,
"raw_scores": bool, "return_text": bool}`. Answer: a JSON list `[{"index": i, "score": s}, ...]`
sorted by score, best first, as TEI returns it (with `"text"` when `return_text`). A
malformed request gets 422 with TEI's error body `{"error": ..., "error_type": "Validation"}`;
an empty `texts` too ("`texts` cannot be empty").

The score is deterministic: the share of the query's words found in the text (a stand-in for
a cross-encoder), so a test knows the order it should see.

    fake = FakeTEI()
    with serve(fake.app) as url:         # tests.fakes.server.serve
        reranker = TEIReranker(url)
    fake.requests[0]  # the JSON bodies received

Scripted answers: `fake.status = 503` answers every request with that status; `fake.body =
"..."` answers 200 with that raw body (malformed answers); `fake.delay = 2.0` waits first.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_WORD = re.compile(r"\w+")


def overlap(query: str, text: str) -> float:
    words = set(_WORD.findall(query.lower()))
    found = set(_WORD.findall(text.lower()))
    return len(words & found) / len(words) if words else 0.0


class FakeTEI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.status: int | None = None
        self.body: str | None = None
        self.delay = 0.0
        self.app = Starlette(routes=[Route("/rerank", self.rerank, methods=["POST"])])

    async def rerank(self, request: Request) -> Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        try:
            payload = await request.json()
        except ValueError:
            return _invalid("Failed to parse the request body as JSON")
        self.requests.append(payload)
        self.headers.append(dict(request.headers))
        if self.status is not None:
            return JSONResponse(
                {"error": "Model is overloaded", "error_type": "overloaded"},
                status_code=self.status,
            )
        if self.body is not None:
            return Response(self.body, media_type="application/json")
        query, texts = payload.get("query"), payload.get("texts")
        if not isinstance(query, str) or not isinstance(texts, list):
            return _invalid("missing field `query` or `texts`")
        if not texts or not all(isinstance(t, str) for t in texts):
            return _invalid("`texts` cannot be empty")
        order = sorted(range(len(texts)), key=lambda n: overlap(query, texts[n]), reverse=True)
        ranked: list[dict[str, Any]] = [
            {"index": n, "score": overlap(query, texts[n])} for n in order
        ]
        if payload.get("return_text"):
            for item, n in zip(ranked, order, strict=True):
                item["text"] = texts[n]
        return JSONResponse(ranked)


def _invalid(message: str) -> Response:
    return JSONResponse({"error": message, "error_type": "Validation"}, status_code=422)
