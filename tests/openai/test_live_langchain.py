"""LangChain's `ChatOpenAI` and `OpenAIEmbeddings` as a second real client of /v1. Optional:
install the `clients` extra (`pip install -e '.[clients]'`); skipped otherwise."""

from __future__ import annotations

import math

import pytest

langchain_openai = pytest.importorskip("langchain_openai")

from langchain_openai import ChatOpenAI, OpenAIEmbeddings  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from tests.openai.conftest import LiveServer  # noqa: E402

LIGHTHOUSE = (
    "The Korvath lighthouse was painted teal in 1911. Its first keeper was Ilse Marren, "
    "who kept a logbook of every storm. The lamp burns whale oil no longer."
)
QUESTION = "Who was the first keeper of the lighthouse?"


def chat_model(server: LiveServer, key: str) -> ChatOpenAI:
    return ChatOpenAI(
        model="rag", base_url=server.v1, api_key=SecretStr(key), max_retries=0, timeout=60
    )


@pytest.fixture(scope="module")
def key(live_server: LiveServer) -> str:
    key = live_server.new_key("langchain@example.com")
    live_server.upload(key, "Lighthouse", LIGHTHOUSE)
    return key


def test_chat_openai_invoke_answers_with_citation(live_server: LiveServer, key: str) -> None:
    message = chat_model(live_server, key).invoke(QUESTION)
    assert isinstance(message.content, str)
    assert "Ilse Marren" in message.content
    assert "[1]" in message.content
    assert message.response_metadata["finish_reason"] == "stop"
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] > 0


def test_chat_openai_stream_concatenates_to_invoke(live_server: LiveServer, key: str) -> None:
    model = chat_model(live_server, key)
    plain = model.invoke(QUESTION)
    streamed = "".join(str(chunk.content) for chunk in model.stream(QUESTION))
    assert streamed.strip() == plain.content


async def test_chat_openai_ainvoke_with_history(live_server: LiveServer, key: str) -> None:
    model = chat_model(live_server, key)
    message = await model.ainvoke(
        [
            ("human", "Tell me about the Korvath lighthouse."),
            ("ai", "It was painted teal in 1911."),
            ("human", QUESTION),
        ]
    )
    assert "Ilse Marren" in str(message.content)


def test_openai_embeddings_embed_in_the_store_space(live_server: LiveServer, key: str) -> None:
    embeddings = OpenAIEmbeddings(
        model="rag-embedding",
        openai_api_base=live_server.v1,
        openai_api_key=SecretStr(key),
        max_retries=0,
        # Otherwise LangChain tokenizes with tiktoken, whose vocabulary is a download.
        check_embedding_ctx_length=False,
    )
    query = embeddings.embed_query(QUESTION)
    documents = embeddings.embed_documents([LIGHTHOUSE, "Quarterly revenue grew by four percent."])
    assert len(query) == 384
    assert math.isclose(sum(x * x for x in query), 1.0, rel_tol=1e-3)
    related, unrelated = (sum(a * b for a, b in zip(query, d, strict=True)) for d in documents)
    assert related > unrelated + 0.2
