"""Errors of the RAG layer shared by the factory and the backends (neither imports the other)."""

from __future__ import annotations


class BackendUnavailable(RuntimeError):
    """A configured backend cannot be built (missing package, model or setting)."""
