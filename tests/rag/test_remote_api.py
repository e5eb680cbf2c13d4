"""The API end to end through the real Hugging Face and Pinecone SDK clients, against fakes
of their wire protocols on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.api.state import State
from app.chat.models import ChatMessage
from tests.conftest import AppFactory, make_admin, new_user
from tests.fakes.huggingface import FakeHuggingFace, delay, malformed, status
from tests.fakes.pinecone import FakePinecone, Fault, disable_sdk_retry_backoff
from tests.fakes.server import serve

FACT = "The Quillon observatory keeps its telescope lens in a vault beneath Lake Varnis."
QUESTION = "Where does the Quillon observatory keep its telescope lens?"
PINECONE_KEY = "pc-test-key"


@pytest.fixture(scope="module")
def hf_server() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace(answer="It is kept in a vault beneath Lake Varnis [1].")
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture(scope="module")
def pinecone_server() -> Iterator[tuple[FakePinecone, str]]:
    fake = FakePinecone(api_key=PINECONE_KEY)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def hf(hf_server: tuple[FakeHuggingFace, str]) -> FakeHuggingFace:
    hf_server[0].reset()
    return hf_server[0]


@pytest.fixture
def pinecone(
    pinecone_server: tuple[FakePinecone, str], monkeypatch: pytest.MonkeyPatch
) -> FakePinecone:
    fake = pinecone_server[0]
    fake.reset()
    fake.add_index("chatbot-index", dimension=384)
    disable_sdk_retry_backoff(monkeypatch)
    return fake


@pytest.fixture
def remote(
    app_factory: AppFactory,
    hf: FakeHuggingFace,
    pinecone: FakePinecone,
    hf_server: tuple[FakeHuggingFace, str],
    pinecone_server: tuple[FakePinecone, str],
) -> Any:
    """App factory wired to the fakes: local embedder, Pinecone store, Hugging Face LLM."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[tuple[httpx.AsyncClient, State]]:
        settings: dict[str, Any] = {
            "llm_backend": "huggingface",
            "llm_base_url": f"{hf_server[1]}/v1",
            "llm_model": "mistralai/Mistral-7B-Instruct-v0.2",
            "huggingface_api_key": "hf_test_token",
            "llm_retry_deadline_seconds": 0.3,
            "vector_store": "pinecone",
            "pinecone_api_key": PINECONE_KEY,
            "pinecone_controller_host": pinecone_server[1],
        }
        settings.update(overrides)
        return app_factory(**settings)

    return factory


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> int:
    response = await client.post("/api/documents/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "ready"
    return int(response.json()["id"])


async def _stored(state: State) -> list[tuple[str, str]]:
    async with state["sessions"]() as session:
        rows = (await session.execute(select(ChatMessage).order_by(ChatMessage.id))).scalars()
        return [(m.role, m.content) for m in rows]


async def test_chat_remote_backends_ground_prompt_and_cite(
    remote: Any, hf: FakeHuggingFace, pinecone: FakePinecone
) -> None:
    async with remote() as (client, _state):
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Observatory", content=FACT)
        upsert = pinecone.requests_to("/vectors/upsert")[0].body
        assert upsert["vectors"][0]["metadata"]["text"] == FACT
        response = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["response"] == "It is kept in a vault beneath Lake Varnis [1]."
        assert body["sources"][0]["document_id"] == doc_id
        chat = [r for r in hf.requests if r.path == "/v1/chat/completions"][-1]
        prompt = json.dumps(chat.json["messages"])
        assert FACT in prompt
        assert QUESTION in prompt
        assert "[1] Observatory" in prompt
        assert chat.json["model"] == "mistralai/Mistral-7B-Instruct-v0.2"
        assert chat.headers["authorization"] == "Bearer hf_test_token"
        query = pinecone.requests_to("/query")[-1].body
        assert query["filter"]["$or"][0] == {"owner_id": {"$eq": 1}}
        history = (await client.get("/api/chat-history/", headers=headers)).json()
        assert history[-1]["sources"][0]["document_id"] == doc_id


async def test_chat_all_remote_including_embeddings(
    remote: Any, hf: FakeHuggingFace, hf_server: tuple[FakeHuggingFace, str]
) -> None:
    async with remote(
        embedding_backend="huggingface", embedding_url=f"{hf_server[1]}/embed", rag_min_score=0.1
    ) as (client, _):
        headers = await new_user(client)
        await _upload(client, headers, title="Observatory", content=FACT)
        response = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert response.status_code == 200
        assert response.json()["sources"][0]["title"] == "Observatory"
        assert len([r for r in hf.requests if r.path == "/embed"]) == 2  # document, question


async def test_chat_pinecone_isolates_users_and_shares_admin_documents(
    remote: Any, pinecone: FakePinecone
) -> None:
    async with remote() as (client, state):
        ada = await new_user(client, "ada@example.com")
        bob = await new_user(client, "bob@example.com")
        await _upload(client, ada, title="Observatory", content=FACT)
        blocked = await client.post("/api/chat/", json={"message": QUESTION}, headers=bob)
        assert blocked.json()["sources"] == []
        await make_admin(state, "ada@example.com")
        shared_id = await _upload(
            client, ada, title="Shared", content=FACT + " Visitors are welcome.", shared=True
        )
        allowed = await client.post("/api/chat/", json={"message": QUESTION}, headers=bob)
        assert [s["document_id"] for s in allowed.json()["sources"]] == [shared_id]


async def test_delete_document_deletes_pinecone_vectors(
    remote: Any, pinecone: FakePinecone
) -> None:
    async with remote() as (client, _):
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Observatory", content=FACT)
        assert len(pinecone.vectors()) == 1
        assert (
            await client.delete(f"/api/documents/{doc_id}/", headers=headers)
        ).status_code == 204
        assert pinecone.vectors() == {}


@pytest.mark.parametrize(
    ("fault", "code", "error"),
    [
        pytest.param(
            status(429, headers={"Retry-After": "7"}),
            503,
            "upstream_unavailable",
            id="rate-limited",
        ),
        pytest.param(status(503), 503, "upstream_unavailable", id="unavailable"),
        pytest.param(status(500), 502, "upstream_error", id="server-error"),
        pytest.param(status(401), 502, "upstream_error", id="unauthorized"),
        pytest.param(malformed(), 502, "upstream_error", id="malformed"),
        pytest.param(
            malformed('{"id": "x", "choices": []}'), 502, "upstream_error", id="no-choices"
        ),
        pytest.param(delay(3.0), 504, "upstream_timeout", id="timeout"),
    ],
)
async def test_chat_llm_failure_maps_status_and_keeps_question(
    remote: Any, hf: FakeHuggingFace, fault: Any, code: int, error: str
) -> None:
    async with remote(llm_timeout_seconds=0.5) as (client, state):
        headers = await new_user(client)
        await _upload(client, headers, title="Observatory", content=FACT)
        hf.push(fault, times=None)
        response = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert response.status_code == code
        assert response.json()["error"] == error
        assert "Traceback" not in response.text
        assert "hf_test_token" not in response.text
        assert await _stored(state) == [("user", QUESTION)]
        expected_retry_after = "7" if fault.headers.get("Retry-After") else None
        assert response.headers.get("retry-after") == expected_retry_after


async def test_chat_llm_rate_limited_once_is_retried(remote: Any, hf: FakeHuggingFace) -> None:
    async with remote(llm_retry_deadline_seconds=5) as (client, _):
        headers = await new_user(client)
        await _upload(client, headers, title="Observatory", content=FACT)
        hf.push(status(429, headers={"Retry-After": "0"}))
        response = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert response.status_code == 200
        assert len([r for r in hf.requests if r.path == "/v1/chat/completions"]) == 2


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        pytest.param(Fault(status=503, path="/query"), 503, id="unavailable"),
        pytest.param(Fault(status=429, path="/query"), 503, id="rate-limited"),
        pytest.param(Fault(status=400, path="/query"), 502, id="bad-request"),
        pytest.param(Fault(status=200, body=b"{not json", path="/query"), 502, id="malformed"),
        pytest.param(Fault(status=None, delay=3.0, path="/query"), 504, id="slow"),
    ],
)
async def test_chat_pinecone_failure_maps_status_and_keeps_question(
    remote: Any, pinecone: FakePinecone, fault: Fault, code: int
) -> None:
    async with remote(pinecone_timeout_seconds=0.3, pinecone_deadline_seconds=1.0) as (
        client,
        state,
    ):
        headers = await new_user(client)
        pinecone.inject(fault, times=None)
        response = await client.post("/api/chat/", json={"message": QUESTION}, headers=headers)
        assert response.status_code == code
        assert response.json()["error"].startswith("upstream_")
        assert PINECONE_KEY not in response.text
        assert await _stored(state) == [("user", QUESTION)]


async def test_upload_pinecone_down_marks_document_failed(
    remote: Any, pinecone: FakePinecone
) -> None:
    async with remote() as (client, _):
        headers = await new_user(client)
        pinecone.inject(Fault(status=503, path="/vectors/upsert"), times=None)
        response = await client.post(
            "/api/documents/", json={"title": "Observatory", "content": FACT}, headers=headers
        )
        assert response.status_code == 201
        assert response.json()["status"] == "failed"
        assert "Pinecone" in response.json()["error"]
        pinecone.clear_faults()
        retried = await client.post(
            "/api/documents/", json={"title": "Observatory", "content": FACT}, headers=headers
        )
        assert retried.json()["status"] == "ready"


async def test_chat_general_fallback_asks_llm_and_flags_answer(
    remote: Any, hf: FakeHuggingFace
) -> None:
    async with remote(rag_fallback="general") as (client, _):
        headers = await new_user(client)
        response = await client.post(
            "/api/chat/", json={"message": "What is the capital of France?"}, headers=headers
        )
        assert response.status_code == 200
        assert response.json()["response"].startswith("(Not from the knowledge base")
        assert response.json()["sources"] == []
        messages = hf.requests[-1].json["messages"]
        assert "general knowledge" in messages[0]["content"]


async def test_chat_refuse_fallback_never_calls_llm(remote: Any, hf: FakeHuggingFace) -> None:
    async with remote() as (client, _):
        headers = await new_user(client)
        response = await client.post(
            "/api/chat/", json={"message": "What is the capital of France?"}, headers=headers
        )
        assert "couldn't find anything" in response.json()["response"]
        assert [r for r in hf.requests if r.path == "/v1/chat/completions"] == []


def _events(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_chat_stream_sends_sources_deltas_done_and_stores_answer(
    remote: Any, hf: FakeHuggingFace
) -> None:
    async with remote() as (client, state):
        headers = await new_user(client)
        doc_id = await _upload(client, headers, title="Observatory", content=FACT)
        response = await client.post(
            "/api/chat/stream/", json={"message": QUESTION}, headers=headers
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.text)
        assert events[0][0] == "sources"
        assert [s["document_id"] for s in events[0][1]] == [doc_id]
        deltas = "".join(data["text"] for name, data in events if name == "delta")
        assert deltas.strip() == "It is kept in a vault beneath Lake Varnis [1]."
        assert events[-1][0] == "done"
        assert hf.requests[-1].json["stream"] is True
        assert (await _stored(state))[-1] == ("bot", deltas.strip())


async def test_chat_stream_upstream_down_sends_error_event_and_keeps_question(
    remote: Any, hf: FakeHuggingFace
) -> None:
    async with remote() as (client, state):
        headers = await new_user(client)
        await _upload(client, headers, title="Observatory", content=FACT)
        hf.push(status(503), times=None)
        response = await client.post(
            "/api/chat/stream/", json={"message": QUESTION}, headers=headers
        )
        assert response.status_code == 200  # headers were sent before the LLM was called
        name, data = _events(response.text)[-1]
        assert (name, data["error"]) == ("error", "upstream_unavailable")
        assert await _stored(state) == [("user", QUESTION)]
