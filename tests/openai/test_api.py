"""/v1 in-process (httpx over ASGI): OpenAI's error shapes, request validation and limits."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from app.main import create_app
from app.testing import running_app
from tests.conftest import AppFactory, make_settings, new_user

LIGHTHOUSE = (
    "The Korvath lighthouse was painted teal in 1911. Its first keeper was Ilse Marren, "
    "who kept a logbook of every storm. The lamp burns whale oil no longer."
)
QUESTION = "Who was the first keeper of the lighthouse?"


async def api_key(client: httpx.AsyncClient, email: str = "ada@example.com") -> dict[str, str]:
    headers = await new_user(client, email)
    created = await client.post("/api/keys/", json={"name": "test"}, headers=headers)
    return {"Authorization": f"Bearer {created.json()['key']}"}


def chat_body(content: Any = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": "rag", "messages": [{"role": "user", "content": content}], **extra}


def assert_openai_error(response: httpx.Response, status: int, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param


async def test_v1_without_credentials_is_401_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models")
    assert_openai_error(response, 401)
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_v1_with_bad_jwt_is_401_in_openai_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models", headers={"Authorization": "Bearer not.a.jwt"})
    assert_openai_error(response, 401)


async def test_seed_routes_keep_their_error_shape(client: httpx.AsyncClient) -> None:
    unauthenticated = await client.get("/api/me/")
    assert unauthenticated.json()["error"] == "not_authenticated"
    invalid = await client.post("/api/signup/", json={})
    assert invalid.status_code == 422
    assert invalid.json()["error"] == "validation_error"
    missing = await client.get("/api/nothing/")
    assert missing.json()["error"] == "not_found"


async def test_unknown_v1_route_is_404_in_openai_shape(client: httpx.AsyncClient) -> None:
    headers = await api_key(client)
    response = await client.get("/v1/assistants", headers=headers)
    assert_openai_error(response, 404)
    wrong_method = await client.get("/v1/chat/completions", headers=headers)
    assert_openai_error(wrong_method, 405)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat_body(temperature=3), "temperature"),
        (chat_body(n=2), "n"),
        (chat_body(max_tokens=0), "max_tokens"),
        (chat_body(content=5), "messages[0].content"),
        (chat_body(content="a\x00b"), "messages[0].content"),
        (
            chat_body(content=[{"type": "image_url", "image_url": {"url": "x"}}]),
            "messages[0].content[0]",
        ),
        ({"model": "rag", "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "rag", "messages": []}, "messages"),
        ({"model": "rag", "messages": [{"role": "assistant", "content": "Hello!"}]}, "messages"),
        (chat_body(content="   "), "messages[0].content"),
    ],
    ids=[
        "temperature",
        "n",
        "max-tokens",
        "content-type",
        "nul",
        "image-part",
        "role",
        "no-model",
        "no-messages",
        "no-user-message",
        "blank-question",
    ],
)
async def test_invalid_chat_request_is_400_naming_the_param(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/chat/completions", json=body, headers=await api_key(client))
    assert_openai_error(response, 400, param)
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "\x00" not in response.text


async def test_undecodable_json_is_400(client: httpx.AsyncClient) -> None:
    headers = {**await api_key(client), "Content-Type": "application/json"}
    response = await client.post("/v1/chat/completions", content=b"{not json", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_unknown_model_is_404_model_not_found(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/chat/completions",
        json={**chat_body(), "model": "gpt-4o"},
        headers=await api_key(client),
    )
    assert_openai_error(response, 404, "model")
    assert response.json()["error"]["code"] == "model_not_found"


async def test_text_parts_and_unknown_fields_are_accepted(client: httpx.AsyncClient) -> None:
    headers = await api_key(client)
    await client.post(
        "/api/documents/", json={"title": "Lighthouse", "content": LIGHTHOUSE}, headers=headers
    )
    body = chat_body(
        content=[
            {"type": "text", "text": "Who was the first keeper"},
            {"type": "text", "text": "of the lighthouse?"},
        ],
        top_p=0.9,
        presence_penalty=0,
        tools=[],
        seed=7,
    )
    response = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    completion = ChatCompletion.model_validate(response.json())
    assert "Ilse Marren" in (completion.choices[0].message.content or "")


async def test_too_many_messages_is_400(app_factory: AppFactory) -> None:
    async with app_factory(openai_max_messages=2) as (client, _):
        history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        body = {"model": "rag", "messages": [*history, {"role": "user", "content": QUESTION}]}
        response = await client.post(
            "/v1/chat/completions", json=body, headers=await api_key(client)
        )
        assert_openai_error(response, 400, "messages")


async def test_question_over_chat_limit_is_400(app_factory: AppFactory) -> None:
    async with app_factory(chat_max_message_chars=10) as (client, _):
        response = await client.post(
            "/v1/chat/completions", json=chat_body(), headers=await api_key(client)
        )
        assert_openai_error(response, 400, "messages[0].content")


async def test_history_beyond_seed_body_limit_is_accepted_up_to_openai_limit(
    app_factory: AppFactory,
) -> None:
    async with app_factory(max_json_body_bytes=4096, openai_max_body_bytes=64 * 1024) as (
        client,
        _,
    ):
        headers = await api_key(client)
        long_turns = [
            {"role": "user", "content": "word " * 1000},
            {"role": "assistant", "content": "ok"},
        ]
        question = {"role": "user", "content": QUESTION}
        body = {"model": "rag", "messages": [*long_turns, question]}
        accepted = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        body = {"model": "rag", "messages": [*long_turns * 20, question]}
        refused = await client.post("/v1/chat/completions", json=body, headers=headers)
        assert refused.status_code == 413


def _events(text: str) -> list[str]:
    return [line.removeprefix("data: ") for line in text.split("\n\n") if line.startswith("data: ")]


async def test_stream_is_chunks_then_done(client: httpx.AsyncClient) -> None:
    headers = await api_key(client)
    await client.post(
        "/api/documents/", json={"title": "Lighthouse", "content": LIGHTHOUSE}, headers=headers
    )
    response = await client.post(
        "/v1/chat/completions", json=chat_body(stream=True), headers=headers
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [ChatCompletionChunk.model_validate(json.loads(e)) for e in events[:-1]]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert "Ilse Marren" in "".join(c.choices[0].delta.content or "" for c in chunks)


async def test_conversation_per_key_and_per_jwt_caller(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    keys = []
    for name in ("one", "two"):
        created = await client.post("/api/keys/", json={"name": name}, headers=headers)
        keys.append({"Authorization": f"Bearer {created.json()['key']}"})
    ids = []
    for credential in (*keys, keys[0], headers):
        response = await client.post("/v1/chat/completions", json=chat_body(), headers=credential)
        ids.append(response.json()["conversation_id"])
    assert ids[0] == ids[2]
    assert len({ids[0], ids[1], ids[3]}) == 3


async def test_long_user_field_still_selects_one_conversation(client: httpx.AsyncClient) -> None:
    headers = await api_key(client)
    ids = {
        (
            await client.post(
                "/v1/chat/completions", json=chat_body(user="u" * 900), headers=headers
            )
        ).json()["conversation_id"]
        for _ in range(2)
    }
    assert len(ids) == 1


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "rag-embedding", "input": []}, 400, "input"),
        ({"model": "rag-embedding", "input": ["ok", " "]}, 400, "input[1]"),
        ({"model": "rag-embedding", "input": [1, 2, 3]}, 400, "input"),
        ({"model": "rag-embedding", "input": "x", "dimensions": 64}, 400, "dimensions"),
        (
            {"model": "rag-embedding", "input": "x", "encoding_format": "int8"},
            400,
            "encoding_format",
        ),
        ({"model": "text-embedding-3-small", "input": "x"}, 404, "model"),
    ],
    ids=["empty", "blank", "token-ids", "dimensions", "format", "model"],
)
async def test_invalid_embedding_request_is_openai_error(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, param: str
) -> None:
    response = await client.post("/v1/embeddings", json=body, headers=await api_key(client))
    assert_openai_error(response, status, param)


async def test_embeddings_beyond_input_limits_are_400(app_factory: AppFactory) -> None:
    async with app_factory(openai_embedding_max_inputs=2, openai_embedding_max_input_chars=20) as (
        client,
        _,
    ):
        headers = await api_key(client)
        many = await client.post(
            "/v1/embeddings",
            json={"model": "rag-embedding", "input": ["a", "b", "c"]},
            headers=headers,
        )
        assert_openai_error(many, 400, "input")
        long = await client.post(
            "/v1/embeddings",
            json={"model": "rag-embedding", "input": ["a", "b" * 21]},
            headers=headers,
        )
        assert_openai_error(long, 400, "input[1]")


async def test_embeddings_by_configured_model_name_match_the_store(
    client: httpx.AsyncClient,
) -> None:
    headers = await api_key(client)
    body = {"model": "sentence-transformers/all-MiniLM-L6-v2", "input": [QUESTION] * 3}
    response = await client.post("/v1/embeddings", json=body, headers=headers)
    assert response.status_code == 200, response.text
    vectors = [d["embedding"] for d in response.json()["data"]]
    assert len(vectors) == 3
    assert vectors[0] == vectors[2]
    assert response.json()["model"] == body["model"]


async def test_database_outage_and_unhandled_errors_keep_openai_shape(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(make_settings(database_url))

    async def outage() -> None:
        raise sqlalchemy.exc.TimeoutError("QueuePool limit reached")

    async def bug() -> None:
        raise RuntimeError("a bug of ours")

    # Routes of the test's own, under /v1 and outside it, raising what a real route could.
    app.add_api_route("/v1/test-outage", outage)
    app.add_api_route("/v1/test-bug", bug)
    app.add_api_route("/api/test-bug/", bug)
    async with running_app(app, raise_app_exceptions=False) as (client, _):
        unavailable = await client.get("/v1/test-outage")
        assert_openai_error(unavailable, 503)
        assert unavailable.json()["error"]["code"] == "database_unavailable"
        assert unavailable.json()["error"]["type"] == "server_error"
        assert int(unavailable.headers["retry-after"]) >= 1
        failed = await client.get("/v1/test-bug")
        assert_openai_error(failed, 500)
        assert "a bug of ours" not in failed.text
        seed = await client.get("/api/test-bug/")
        assert seed.json() == {"error": "internal_error", "detail": "Internal server error."}
    assert "Unhandled error on GET /v1/test-bug" in caplog.text
