"""The feedback tests answer through the wire-fake LLM of tests/usage (no model to load)."""

from tests.usage.conftest import hf, hf_server, remote

__all__ = ["hf", "hf_server", "remote"]
