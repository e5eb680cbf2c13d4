"""The embedded defaults: a local sentence-transformers model, a vector store in the app's own
database searched in memory, and an extractive answerer that never invents."""

from app.rag.backends.local.embedder import DEFAULT_MODEL_ID, LocalEmbedder, resolve_model_path
from app.rag.backends.local.extractive import ExtractiveGenerator
from app.rag.backends.local.store import (
    SHARED_OWNER,
    LocalVectorStore,
    VectorEntry,
    VectorStoreState,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "SHARED_OWNER",
    "ExtractiveGenerator",
    "LocalEmbedder",
    "LocalVectorStore",
    "VectorEntry",
    "VectorStoreState",
    "resolve_model_path",
]
