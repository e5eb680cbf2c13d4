"""The Pinecone and Hugging Face wire fakes of the remote API tests, for the security tests."""

from tests.rag.test_remote_api import (  # noqa: F401
    hf,
    hf_server,
    pinecone,
    pinecone_server,
    remote,
)
