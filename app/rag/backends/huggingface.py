"""Hugging Face backends: embeddings by feature extraction, answers by chat completion.

Both go through `huggingface_hub.AsyncInferenceClient`, which never retries; `_RetryPolicy`
retries rate limits (429), 503s and connection failures within a deadline and maps every
failure onto `UpstreamError` (502), `UpstreamUnavailable` (503) or `UpstreamTimeout` (504).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any, TypeVar

import httpx2
import numpy as np
import numpy.typing as npt
from huggingface_hub import (
    AsyncInferenceClient,
    ChatCompletionInputMessage,
    ChatCompletionInputStreamOptions,
)
from huggingface_hub.errors import (
    HfHubHTTPError,
    InferenceTimeoutError,
    OfflineModeIsEnabled,
    TextGenerationError,
)

from app.core import deadline as turn_deadline
from app.core.config import Settings
from app.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.rag.protocols import GenerationRequest, Matrix, Priority, TokenUsage

logger = logging.getLogger(__name__)

HF_INFERENCE_EMBED_URL = (
    "https://router.huggingface.co/hf-inference/models/{model}/pipeline/feature-extraction"
)
"""Where a repo id is embedded (HF Inference, the route the SDK's "hf-inference" provider uses)."""

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
T = TypeVar("T")

_RETRY_STATUSES = frozenset({429, 503})
_BACKOFF_BASE_SECONDS = 0.5
_BACKOFF_CAP_SECONDS = 8.0
STREAMS_PER_CLIENT = 256


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date), None if absent or bad."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, HfHubHTTPError):
        return exc.response.status_code in _RETRY_STATUSES
    # httpx2's own exceptions (huggingface_hub does not wrap connection failures).
    return isinstance(exc, httpx2.NetworkError | httpx2.RemoteProtocolError) and not isinstance(
        exc, httpx2.TimeoutException
    )


def _upstream_error(exc: BaseException, what: str) -> UpstreamError | None:
    """The API error for a permanent failure of `what`; None for an exception that is not ours."""
    if isinstance(exc, InferenceTimeoutError | httpx2.TimeoutException | TimeoutError):
        return UpstreamTimeout(f"{what} timed out.")
    if isinstance(exc, HfHubHTTPError):
        if exc.response.status_code == 504:
            return UpstreamTimeout(f"{what} timed out (HTTP 504).")
        return UpstreamError(f"{what} failed with HTTP {exc.response.status_code}.")
    if isinstance(exc, OfflineModeIsEnabled):
        return UpstreamError(f"{what} is blocked: HF_HUB_OFFLINE is set.")
    if isinstance(exc, TextGenerationError):
        return UpstreamError(f"{what} reported an error: {type(exc).__name__}.")
    if isinstance(exc, httpx2.HTTPError):
        return UpstreamError(f"{what} failed: {type(exc).__name__}.")
    # Raised by the SDK while parsing a body that is not the JSON it expects.
    if isinstance(exc, ValueError | TypeError | KeyError | AttributeError):
        return UpstreamError(f"{what} returned a malformed answer.")
    return None


class _RetryPolicy:
    """Retries transient failures with full-jitter backoff until `deadline` seconds have passed,
    or the current turn's deadline (`app.core.deadline`) if that comes first: the calls of one
    turn share its budget instead of each retrying for a full `deadline`.

    A `Retry-After` longer than the time left ends the retries at once: waiting until the deadline
    and asking again would only get another refusal.
    """

    def __init__(self, *, deadline: float, sleep: Sleep, clock: Clock, secret: str | None) -> None:
        self._deadline = deadline
        self._sleep = sleep
        self._clock = clock
        self._secret = secret

    def translate(self, exc: BaseException, what: str) -> UpstreamError | None:
        error = _upstream_error(exc, what)
        if error is not None:
            message = str(exc)
            if self._secret:
                message = message.replace(self._secret, "***")
            logger.warning("%s: %s: %s", what, type(exc).__name__, message)
        return error

    async def call(self, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        started = self._clock()
        attempt = 0
        while True:
            try:
                return await operation()
            except Exception as exc:
                if not _is_transient(exc):
                    error = self.translate(exc, what)
                    if error is None:
                        raise
                    raise error from exc
                response = exc.response if isinstance(exc, HfHubHTTPError) else None
                retry_after = _retry_after(response.headers) if response is not None else None
                reason = f"HTTP {response.status_code}" if response is not None else "no connection"
                remaining = self._deadline - (self._clock() - started)
                turn_left = turn_deadline.remaining()
                if turn_left is not None:
                    remaining = min(remaining, turn_left)
                if remaining <= 0 or (retry_after is not None and retry_after > remaining):
                    logger.warning("%s: giving up after %d attempts: %s", what, attempt + 1, reason)
                    raise UpstreamUnavailable(
                        f"{what} is unavailable ({reason}).", retry_after=retry_after
                    ) from exc
                if retry_after is None:
                    backoff = min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2**attempt)
                    wait = random.random() * backoff  # noqa: S311 (jitter, not security)
                else:
                    wait = retry_after
                wait = min(wait, remaining)
                logger.info("%s: %s, retrying in %.2f s", what, reason, wait)
                await self._sleep(wait)
                attempt += 1


async def _open_session(client: AsyncInferenceClient, lock: asyncio.Lock) -> None:
    """Build the SDK's HTTP session before concurrent calls race to. AsyncInferenceClient
    builds it lazily, unlocked, on first use: 100 concurrent first calls built 100 sessions
    (a TLS context each, ~5-30 ms of blocked event loop), all but one left open until close()
    (bench/perf/concurrency.py, profiled with py-spy)."""
    if client._async_client is None:  # private: the SDK has no public way to do this
        async with lock:
            await client._get_async_client()  # type: ignore[no-untyped-call]


class _RotatingClient:
    """Lends out one AsyncInferenceClient, replaced by a new one every `max_streams` streams.

    AsyncInferenceClient keeps every streamed response on its exit stack until `close()` (about
    25 KB per answer with a 4 KB prompt), so a client that streams forever grows forever. A new
    client per stream would instead block the loop ~30 ms building its TLS context. A retired
    client is closed once nobody is using it.
    """

    def __init__(self, factory: Callable[[], AsyncInferenceClient], *, max_streams: int) -> None:
        self._factory = factory
        self._max_streams = max_streams
        self._current = factory()
        self._streams = 0
        self._users: dict[AsyncInferenceClient, int] = {self._current: 0}
        self._session_lock = asyncio.Lock()

    @asynccontextmanager
    async def borrow(self, *, stream: bool = False) -> AsyncIterator[AsyncInferenceClient]:
        if stream and self._streams >= self._max_streams:
            retired, self._current, self._streams = self._current, self._factory(), 0
            self._users[self._current] = 0
            if self._users[retired] == 0:
                del self._users[retired]
                await retired.close()  # type: ignore[no-untyped-call]
        client = self._current
        self._users[client] += 1
        await _open_session(client, self._session_lock)
        if stream:
            self._streams += 1
        try:
            yield client
        finally:
            self._users[client] -= 1
            if client is not self._current and self._users[client] == 0:
                del self._users[client]
                await client.close()  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        for client in list(self._users):
            await client.close()  # type: ignore[no-untyped-call]


class HuggingFaceEmbedder:
    """Embeds texts with a Hugging Face feature-extraction model.

    With `url`, posts to exactly that URL (text-embeddings-inference, an Inference Endpoint);
    otherwise sends the repo id `model` to HF Inference. Vectors are L2-normalised here, whatever
    the server does.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        url: str | None = None,
        dimension: int = 384,
        batch_size: int = 32,
        timeout: float = 30,
        retry_deadline: float = 20,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        # A URL as `model` skips the SDK's blocking Hub lookup (`model_info`) on the first call
        # and posts straight to the route that lookup would have chosen.
        self.url = url or HF_INFERENCE_EMBED_URL.format(model=model)
        # Errors name the service that failed: a self-hosted server is not Hugging Face.
        self._what = (
            "Hugging Face embedding" if url is None else "The embedding server at EMBEDDING_URL"
        )
        self._dimension = dimension
        self._batch_size = batch_size
        self._client = AsyncInferenceClient(api_key=api_key, timeout=timeout)
        self._session_lock = asyncio.Lock()
        self._retry = _RetryPolicy(
            deadline=retry_deadline, sleep=sleep, clock=clock, secret=api_key
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> HuggingFaceEmbedder:
        key = settings.huggingface_api_key
        return cls(
            model=settings.embedding_model,
            api_key=key.get_secret_value() if key else None,
            url=settings.embedding_url,
            dimension=settings.embedding_dimension,
            batch_size=settings.embedding_batch_size,
            timeout=settings.embedding_timeout_seconds,
            retry_deadline=settings.llm_retry_deadline_seconds,
        )

    @property
    def dimension(self) -> int:
        return self._dimension

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        """Embed `texts` in batches of `batch_size`; shape (len(texts), dimension). The
        server queues requests itself: `priority` is not sent."""
        matrix = np.empty((len(texts), self._dimension), dtype=np.float32)
        await _open_session(self._client, self._session_lock)
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            raw = await self._retry.call(
                self._what,
                partial(self._client.feature_extraction, batch, model=self.url, truncate=True),
            )
            matrix[start : start + len(batch)] = self._normalised(raw, len(batch))
        return matrix

    def _normalised(self, raw: npt.NDArray[Any], rows: int) -> Matrix:
        if raw.shape != (rows, self._dimension):
            raise UpstreamError(
                f"{self._what} returned shape {raw.shape}, expected ({rows}, {self._dimension})."
            )
        if not np.isfinite(raw).all():
            raise UpstreamError(f"{self._what} returned a non-finite value.")
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        if not (norms > 0).all():
            raise UpstreamError(f"{self._what} returned a zero vector.")
        normalised: Matrix = (raw / norms).astype(np.float32)
        return normalised

    async def aclose(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]


def _report_usage(request: GenerationRequest, usage: Any) -> None:
    """Hand the server's `usage` to the turn's meter; a missing or malformed one is left to
    the meter's estimate."""
    if request.on_usage is None or usage is None:
        return
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        request.on_usage(TokenUsage(prompt, completion))


class HuggingFaceGenerator:
    """Answers with a chat model through an OpenAI-compatible chat-completions API.

    With `base_url` (a server root ending in `/v1`: TGI, vLLM, Ollama, an Inference Endpoint)
    the request goes there; otherwise to the Hugging Face router, which picks a provider for
    `model` and needs an `hf_` token.
    """

    def __init__(
        self,
        *,
        model: str,
        api_key: str | None,
        base_url: str | None = None,
        timeout: float = 60,
        retry_deadline: float = 20,
        stream_usage: bool = True,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self._stream_options = (
            ChatCompletionInputStreamOptions(include_usage=True) if stream_usage else None
        )
        if base_url is None and not (api_key or "").startswith("hf_"):
            raise ValueError(
                "The Hugging Face router needs HUGGINGFACE_API_KEY to be a Hugging Face token "
                "(hf_...); for another OpenAI-compatible server set LLM_BASE_URL."
            )
        self.model = model
        self.base_url = base_url
        self._what = (
            "Hugging Face chat completion"
            if base_url is None
            else "The language model server at LLM_BASE_URL"
        )
        self._api_key = api_key
        self._timeout = timeout
        self._clients = _RotatingClient(self._new_client, max_streams=STREAMS_PER_CLIENT)
        self._retry = _RetryPolicy(
            deadline=retry_deadline, sleep=sleep, clock=clock, secret=api_key
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> HuggingFaceGenerator:
        key = settings.huggingface_api_key
        return cls(
            model=settings.llm_model,
            api_key=key.get_secret_value() if key else None,
            base_url=settings.llm_base_url,
            timeout=settings.llm_timeout_seconds,
            retry_deadline=settings.llm_retry_deadline_seconds,
            stream_usage=settings.llm_stream_usage,
        )

    def _new_client(self) -> AsyncInferenceClient:
        if self.base_url is not None:
            return AsyncInferenceClient(
                base_url=self.base_url, api_key=self._api_key, timeout=self._timeout
            )
        # "auto" (the default when unset, minus a log line per call) is the router's
        # server-side provider choice: no Hub lookup before the request.
        return AsyncInferenceClient(provider="auto", api_key=self._api_key, timeout=self._timeout)

    @staticmethod
    def _messages(request: GenerationRequest) -> list[dict[str, Any] | ChatCompletionInputMessage]:
        return [{"role": turn.role, "content": turn.content} for turn in request.messages]

    async def generate(self, request: GenerationRequest) -> str:
        async with self._clients.borrow() as client:
            output = await self._retry.call(
                self._what,
                lambda: client.chat_completion(
                    self._messages(request),
                    model=self.model,
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                ),
            )
        _report_usage(request, getattr(output, "usage", None))
        choices = output.choices
        if not choices:
            raise UpstreamError(f"{self._what} returned no choices.")
        message = choices[0].message
        content = getattr(message, "content", None)
        if not isinstance(content, str):
            raise UpstreamError(f"{self._what} returned no text.")
        return content

    async def stream(self, request: GenerationRequest) -> AsyncIterator[str]:
        """The answer as text deltas; retries happen only before the first delta."""
        async with self._clients.borrow(stream=True) as client:
            chunks = await self._retry.call(
                self._what,
                lambda: client.chat_completion(
                    self._messages(request),
                    model=self.model,
                    max_tokens=request.max_tokens,
                    temperature=request.temperature,
                    stream=True,
                    # OpenAI-compatible servers then send `usage` in a last chunk.
                    stream_options=self._stream_options,
                ),
            )
            any_choice = False
            try:
                async for chunk in chunks:
                    _report_usage(request, getattr(chunk, "usage", None))
                    if not chunk.choices:
                        continue
                    any_choice = True
                    delta = chunk.choices[0].delta
                    content = getattr(delta, "content", None)
                    if isinstance(content, str) and content:
                        yield content
            except Exception as exc:
                error = self._retry.translate(exc, self._what)
                if error is None:
                    raise
                raise error from exc
            if not any_choice:
                raise UpstreamError(f"{self._what} streamed no choices.")

    async def aclose(self) -> None:
        await self._clients.aclose()
