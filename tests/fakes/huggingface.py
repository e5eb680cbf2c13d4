"""A fake Hugging Face inference server speaking the real wire protocol, for tests.

It answers what `huggingface_hub.AsyncInferenceClient` sends:

* `POST /v1/chat/completions`: OpenAI-style chat completion. Non-stream requests get a
  `chat.completion` JSON object; `"stream": true` gets Server-Sent Events
  (`data: {chat.completion.chunk}` lines, one per word of the answer, then `data: [DONE]`).
* `POST {embed_path}` (default `/embed`, like text-embeddings-inference) and
  `POST /hf-inference/models/{model}/pipeline/feature-extraction` (the HF Inference route):
  feature extraction. `{"inputs": "text"}` gets one vector `[floats]`, `{"inputs": [..]}` gets
  `[[floats], ...]`. Vectors are deterministic word hashes (`FakeHuggingFace.embedding`), not
  normalised unless the body says `"normalize": true`.

Usage:

    fake = FakeHuggingFace(answer="Paris [1].")
    with serve(fake.app) as base_url:       # tests.fakes.server.serve
        generator = HuggingFaceGenerator(model="m", api_key="hf_x", base_url=f"{base_url}/v1")
        embedder = HuggingFaceEmbedder(model="m", api_key="hf_x", url=f"{base_url}/embed")
        ...
    fake.requests[0].path, fake.requests[0].headers["authorization"], fake.requests[0].json

Scripted failures: `fake.push(fault, ..., times=1)` queues faults; each request (any route)
takes the next one. `times=None` repeats the fault for every later request. Faults:

* `status(429, headers={"Retry-After": "1"})`: answer with that status and a JSON error body.
* `delay(2.0)`: wait that many seconds, then answer normally (to trigger client timeouts).
* `malformed()`: 200 with a non-JSON body; `malformed('{"id": "x"}')`: 200 with that body
  (e.g. a completion without `choices`).
* `wrong_dimension()`: embeddings one dimension short (chat requests answer normally).

`Fault(status=..., headers=..., body=..., delay=...)` combines them, e.g. a slow 503.

`fake.reset()` clears the recorded requests and the fault queue.

Token usage, as OpenAI reports it: every non-stream completion carries
`"usage": {"prompt_tokens", "completion_tokens", "total_tokens"}` (`fake.usage`, a pair, by
default (10, 5)); a stream asked with `"stream_options": {"include_usage": true}` ends with a
chunk whose `choices` is empty and which carries `usage`. `fake.usage = None` sends none (an
upstream that does not count); `fake.usage_for = callable(body) -> (prompt, completion)`
computes it per request.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DEFAULT_ANSWER = "The capital of France is Paris [1]."
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    json: Any
    # time.monotonic() when the request arrived: when a client made its attempts.
    at: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Fault:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    delay: float = 0.0
    wrong_dimension: bool = False


def status(code: int, *, headers: Mapping[str, str] | None = None) -> Fault:
    body = json.dumps({"error": f"HTTP {code}"})
    return Fault(status=code, headers=dict(headers or {}), body=body)


def delay(seconds: float) -> Fault:
    return Fault(delay=seconds)


def malformed(body: str = "<html>not json</html>") -> Fault:
    return Fault(body=body)


def wrong_dimension() -> Fault:
    return Fault(wrong_dimension=True)


class FakeHuggingFace:
    """The fake server's state; serve `app` with `tests.fakes.server.serve`."""

    def __init__(
        self, *, dimension: int = 384, embed_path: str = "/embed", answer: str = DEFAULT_ANSWER
    ) -> None:
        self.dimension = dimension
        self.answer = answer
        self.usage: tuple[int, int] | None = (10, 5)
        self.usage_for: Callable[[Any], tuple[int, int]] | None = None
        # Set when a chat request arrives (before any fault's delay): a test's sync point.
        self.chat_received = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._faults: deque[tuple[Fault, int | None]] = deque()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route(embed_path, self._embed, methods=["POST"]),
                Route(
                    "/hf-inference/models/{model:path}/pipeline/feature-extraction",
                    self._embed,
                    methods=["POST"],
                ),
            ]
        )

    def push(self, *faults: Fault, times: int | None = 1) -> None:
        with self._lock:
            self._faults.extend((fault, times) for fault in faults)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
        self.usage = (10, 5)
        self.usage_for = None
        self.chat_received.clear()

    def _usage(self, body: Any) -> dict[str, int] | None:
        counts = self.usage_for(body) if self.usage_for is not None else self.usage
        if counts is None:
            return None
        prompt, completion = counts
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def embedding(self, text: str, dimension: int | None = None) -> list[float]:
        """The fake model: a bias term plus signed word-hash counts (never all zero)."""
        dimension = dimension or self.dimension
        vector = [0.0] * dimension
        vector[0] = 1.0
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "big") % dimension
            vector[index] += 1.0 if digest[4] & 1 else -1.0
        return vector

    def _next_fault(self) -> Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault, times = self._faults[0]
            if times is not None:
                if times <= 1:
                    self._faults.popleft()
                else:
                    self._faults[0] = (fault, times - 1)
            return fault

    async def _record(self, request: Request) -> tuple[Any, Fault | None]:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        self.requests.append(RecordedRequest(request.url.path, dict(request.headers), body))
        fault = self._next_fault()
        if fault is not None and fault.delay:
            await asyncio.sleep(fault.delay)
        return body, fault

    @staticmethod
    def _fault_response(fault: Fault | None) -> Response | None:
        if fault is None or (fault.status == 200 and fault.body is None):
            return None
        return Response(
            fault.body or "",
            status_code=fault.status,
            headers=dict(fault.headers),
            media_type="application/json",
        )

    async def _chat(self, request: Request) -> Response:
        self.chat_received.set()
        body, fault = await self._record(request)
        if (response := self._fault_response(fault)) is not None:
            return response
        model = body.get("model", "dummy")
        usage = self._usage(body)
        if body.get("stream"):
            options = body.get("stream_options") or {}
            final = usage if options.get("include_usage") else None
            return StreamingResponse(
                self._with_usage(self._chunks(model), model, final),
                media_type="text/event-stream",
            )
        completion: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fake",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.answer},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        }
        if usage is not None:
            completion["usage"] = usage
        return JSONResponse(completion)

    async def _chunks(self, model: str) -> AsyncIterator[str]:
        words = self.answer.split(" ")
        deltas = [{"role": "assistant", "content": ""}]
        deltas += [{"content": word if i == 0 else f" {word}"} for i, word in enumerate(words)]
        deltas.append({})
        for i, delta in enumerate(deltas):
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "system_fingerprint": "fake",
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "logprobs": None,
                        "finish_reason": "stop" if i == len(deltas) - 1 else None,
                    }
                ],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
        yield "data: [DONE]\n\n"

    @staticmethod
    async def _with_usage(
        chunks: AsyncIterator[str], model: str, usage: dict[str, int] | None
    ) -> AsyncIterator[str]:
        """The chunks, with OpenAI's usage chunk (empty `choices`) before `[DONE]`; a wrapper,
        so subclasses that pace `_chunks` keep working."""
        try:
            async for chunk in chunks:
                if chunk.startswith("data: [DONE]") and usage is not None:
                    last = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion.chunk",
                        "created": int(time.time()),
                        "model": model,
                        "system_fingerprint": "fake",
                        "choices": [],
                        "usage": usage,
                    }
                    yield f"data: {json.dumps(last)}\n\n"
                yield chunk
        finally:  # closed at once when the client leaves (subclasses record that)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _embed(self, request: Request) -> Response:
        body, fault = await self._record(request)
        if (response := self._fault_response(fault)) is not None:
            return response
        dimension = self.dimension - 1 if fault and fault.wrong_dimension else self.dimension
        inputs = body["inputs"]
        texts = [inputs] if isinstance(inputs, str) else inputs
        vectors = [self.embedding(text, dimension) for text in texts]
        if body.get("normalize"):
            vectors = [[x / math.hypot(*v) for x in v] for v in vectors]
        return JSONResponse(vectors[0] if isinstance(inputs, str) else vectors)
