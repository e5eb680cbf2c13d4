"""Issue 22, findings 2-9: each test reproduces one finding of the hostile-client review and
fails on the code before its fix (SQLite and PostgreSQL: TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text

from app.api.state import State
from app.auth.models import User
from app.core.config import load_settings
from app.main import create_app
from app.testing import running_app
from tests.conftest import AppFactory, login_headers, make_settings, new_user, signup

PASSWORD = "correct horse 1"
LIMITS_ON = {"rate_limit_enabled": True, "rate_limit_login_per_ip_per_minute": 1_000}
SURROGATE_JSON = '"x \\ud800"'  # a lone surrogate, as JSON spells it


async def create_key(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    response = await client.post("/api/keys/", json={"name": "k", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def raw_json(body: str) -> dict[str, Any]:
    return {"content": body.encode(), "headers": {"Content-Type": "application/json"}}


# Finding 2: lone surrogates gave 500s on optional, union and raw-body paths.


async def test_login_lone_surrogate_email_with_limits_on_422(app_factory: AppFactory) -> None:
    async with app_factory(**LIMITS_ON) as (client, _):
        response = await client.post(
            "/api/login/", **raw_json(f'{{"email": {SURROGATE_JSON}, "password": "whatever1"}}')
        )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert response.json()["detail"][0]["loc"] == ["body", "email"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        pytest.param("/api/conversations/", f'{{"title": {SURROGATE_JSON}}}', id="title"),
        pytest.param("/api/chat/", f'{{"message": {SURROGATE_JSON}}}', id="chat"),
    ],
)
async def test_post_lone_surrogate_in_api_body_422(
    app_factory: AppFactory, path: str, body: str
) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.post(
            path, content=body.encode(), headers={**headers, "Content-Type": "application/json"}
        )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        pytest.param(
            "/v1/embeddings",
            f'{{"model": "rag-embedding", "input": {SURROGATE_JSON}}}',
            "input",
            id="embedding-input",
        ),
        pytest.param(
            "/v1/embeddings",
            f'{{"model": "rag-embedding", "input": ["fine", {SURROGATE_JSON}]}}',
            "input[1]",
            id="embedding-list",
        ),
        pytest.param(
            "/v1/chat/completions",
            f'{{"model": "rag", "messages": [{{"role": "user", "content": {SURROGATE_JSON}}}]}}',
            "messages[0].content",
            id="message-content",
        ),
    ],
)
async def test_post_lone_surrogate_under_v1_400_in_openai_shape(
    app_factory: AppFactory, path: str, body: str, param: str
) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.post(
            path, content=body.encode(), headers={**headers, "Content-Type": "application/json"}
        )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_post_surrogate_as_raw_utf8_bytes_422(app_factory: AppFactory) -> None:
    # CESU-8 bytes of U+D800: json.loads(bytes) lets them through as a surrogate.
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.post(
            "/api/conversations/",
            content=b'{"title": "x \xed\xa0\x80"}',
            headers={**headers, "Content-Type": "application/json"},
        )

    assert response.status_code == 422, response.text


async def test_get_query_not_utf8_422(app_factory: AppFactory) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.get("/api/conversations/?cursor=%ED%A0%80", headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "cursor"]


async def test_post_paired_surrogate_escape_is_valid_text_201(app_factory: AppFactory) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.post(
            "/api/conversations/",
            **{
                **raw_json('{"title": "smile \\ud83d\\ude00"}'),
                "headers": {**headers, "Content-Type": "application/json"},
            },
        )

    assert response.status_code == 201, response.text
    assert response.json()["title"] == "smile \U0001f600"


# Finding 3: the per-account login limit read the email only for `application/json...`.


@pytest.mark.parametrize(
    "content_type",
    ["Application/JSON", "application/vnd.api+json", "APPLICATION/JSON; charset=utf-8"],
)
async def test_login_json_spelling_counts_against_account_429(
    app_factory: AppFactory, content_type: str
) -> None:
    async with app_factory(**LIMITS_ON, rate_limit_login_per_account_per_minute=3) as (
        client,
        _,
    ):
        await signup(client)
        body = b'{"email": "ada@example.com", "password": "wrong password"}'
        statuses = [
            (
                await client.post(
                    "/api/login/",
                    content=body,
                    headers={"Content-Type": content_type, "X-Forwarded-For": f"10.0.0.{n}"},
                )
            ).status_code
            for n in range(6)
        ]

    assert statuses[:3] == [401, 401, 401]
    assert statuses[3:] == [429, 429, 429]


async def test_token_form_counts_against_the_same_account_as_login_429(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**LIMITS_ON, rate_limit_login_per_account_per_minute=2) as (
        client,
        _,
    ):
        await signup(client)
        wrong = {"email": "ada@example.com", "password": "wrong password"}
        first = await client.post("/api/login/", json=wrong)
        second = await client.post(
            "/api/token/", data={"username": "ADA@example.com", "password": "wrong password"}
        )
        third = await client.post(
            "/api/token/",
            content=b"username=ada%40example.com&password=wrong",
            headers={"Content-Type": "Application/X-WWW-Form-Urlencoded"},
        )

    assert [first.status_code, second.status_code, third.status_code] == [401, 401, 429]


# Finding 4: /v1/embeddings was unlimited, uncapped in total and took the query lane.


async def test_embeddings_per_user_limit_shared_by_key_and_token_429(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**LIMITS_ON, rate_limit_embeddings_per_minute=2) as (client, _):
        headers = await new_user(client)
        key = {"Authorization": f"Bearer {await create_key(client, headers)}"}
        body = {"model": "rag-embedding", "input": "hello"}
        statuses = [
            (await client.post("/v1/embeddings", json=body, headers=h)).status_code
            for h in (headers, key, key)
        ]
        other = await new_user(client, "bob@example.com")
        others = await client.post("/v1/embeddings", json=body, headers=other)

    assert statuses == [200, 200, 429]
    assert others.status_code == 200  # a per-user count


async def test_embeddings_total_characters_over_ceiling_400(app_factory: AppFactory) -> None:
    async with app_factory(openai_embedding_max_request_chars=1_000) as (client, state):
        headers = await new_user(client)
        calls: list[int] = []
        embed = state["embedder"].embed

        async def counting(texts: Any, **kwargs: Any) -> Any:
            calls.append(len(texts))
            return await embed(texts, **kwargs)

        state["embedder"].embed = counting  # type: ignore[method-assign]
        body = {"model": "rag-embedding", "input": ["x" * 600, "y" * 600]}
        response = await client.post("/v1/embeddings", json=body, headers=headers)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "input"
    assert calls == []  # refused before any encode


async def test_embeddings_encoded_in_bulk_lane(app_factory: AppFactory) -> None:
    async with app_factory() as (client, state):
        headers = await new_user(client)
        priorities: list[str] = []
        embed = state["embedder"].embed

        async def recording(texts: Any, *, priority: str = "query") -> Any:
            priorities.append(priority)
            return await embed(texts, priority=priority)  # type: ignore[arg-type]

        state["embedder"].embed = recording  # type: ignore[method-assign]
        body = {"model": "rag-embedding", "input": ["one", "two"]}
        response = await client.post("/v1/embeddings", json=body, headers=headers)

    assert response.status_code == 200, response.text
    assert priorities == ["bulk"]


# Finding 5: DELETE /api/me/ was an unlimited password oracle, open to API keys.


async def _users(state: State) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count()).select_from(User))).scalar_one())


async def test_delete_me_with_api_key_403_and_account_kept(app_factory: AppFactory) -> None:
    async with app_factory() as (client, state):
        headers = await new_user(client)
        key = {"Authorization": f"Bearer {await create_key(client, headers)}"}
        response = await client.request(
            "DELETE", "/api/me/", json={"password": PASSWORD}, headers=key
        )
        users = await _users(state)

    assert response.status_code == 403, response.text
    assert response.json()["error"] == "permission_denied"
    assert users == 1


async def test_delete_me_wrong_passwords_limited_right_one_refused_429(
    app_factory: AppFactory,
) -> None:
    async with app_factory(**LIMITS_ON, rate_limit_login_per_account_per_minute=4) as (
        client,
        state,
    ):
        headers = await new_user(client)  # its login counts: 3 checks left this minute
        statuses = [
            (
                await client.request(
                    "DELETE", "/api/me/", json={"password": "wrong password"}, headers=headers
                )
            ).status_code
            for _ in range(5)
        ]
        right = await client.request(
            "DELETE", "/api/me/", json={"password": PASSWORD}, headers=headers
        )
        login = await client.post(
            "/api/login/", json={"email": "ada@example.com", "password": PASSWORD}
        )
        users = await _users(state)

    assert statuses == [401, 401, 401, 429, 429]
    assert right.status_code == 429
    assert login.status_code == 429  # one count for login and deletion
    assert users == 1


# Finding 7: out-of-range values and NUL gave 500s.


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
async def test_create_key_expiry_out_of_utc_range_422(
    app_factory: AppFactory, expires_at: str
) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.post(
            "/api/keys/", json={"name": "k", "expires_at": expires_at}, headers=headers
        )

    assert response.status_code == 422, response.text


async def test_list_conversations_cursor_before_year_one_422(app_factory: AppFactory) -> None:
    from app.chat.conversations.paging import encode_cursor

    async with app_factory() as (client, _):
        headers = await new_user(client)
        cursor = encode_cursor("0001-01-01T00:00:00+05:00", 1)
        response = await client.get(f"/api/conversations/?cursor={cursor}", headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_input"


async def test_chat_completion_nul_in_user_field_400(app_factory: AppFactory) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        body = {
            "model": "rag",
            "user": "a\x00b",
            "messages": [{"role": "user", "content": "How many days of leave?"}],
        }
        response = await client.post("/v1/chat/completions", json=body, headers=headers)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "user"


# Finding 8: CORS_ORIGINS=* with CORS_ALLOW_CREDENTIALS=true echoed any origin with credentials.


def test_load_settings_cors_star_with_credentials_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Any
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("CORS_ORIGINS", "*")
    monkeypatch.setenv("CORS_ALLOW_CREDENTIALS", "true")

    with pytest.raises(SystemExit) as exit_info:
        load_settings()

    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert len(lines) == 1
    assert lines[0].startswith("configuration error:")
    assert "CORS_ORIGINS=*" in lines[0]


# Finding 9: metrics labels of conversation routes; 500s closing the keep-alive connection.


def _count(route: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "http_requests_total", {"method": "GET", "route": route, "status": status}
    )
    return value or 0.0


async def test_get_conversation_metrics_label_is_full_route_template(
    app_factory: AppFactory,
) -> None:
    template = "/api/conversations/{conversation_id}/"
    before = _count(template, "404")
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.get("/api/conversations/999/", headers=headers)

    assert response.status_code == 404
    assert _count(template, "404") == before + 1


@pytest.mark.parametrize(("path", "shape"), [("/api/boom/", "ours"), ("/v1/boom", "openai")])
async def test_unhandled_error_rendered_inside_app_json_500(
    database_url: str, path: str, shape: str
) -> None:
    app = create_app(make_settings(database_url))
    boom = APIRouter()

    @boom.get(path)
    async def explode() -> None:
        raise RuntimeError("a bug")

    app.include_router(boom)
    # raise_app_exceptions=True: an exception that escaped to the server would raise here.
    async with running_app(app, raise_app_exceptions=True) as (client, _):
        response = await client.get(path)
        after = await client.get("/healthz")

    assert response.status_code == 500
    if shape == "ours":
        assert response.json() == {"error": "internal_error", "detail": "Internal server error."}
    else:
        assert response.json()["error"]["type"] == "server_error"
    assert after.status_code == 200


async def test_nul_in_stored_fields_refused_on_every_database(app_factory: AppFactory) -> None:
    async with app_factory() as (client, state):
        headers = await new_user(client)
        title = await client.post("/api/conversations/", json={"title": "a\x00"}, headers=headers)
        key = await client.post("/api/keys/", json={"name": "a\x00"}, headers=headers)
        async with state["sessions"]() as session:
            stored = (await session.execute(text("SELECT count(*) FROM conversations"))).scalar()

    assert (title.status_code, key.status_code) == (422, 422)
    assert stored == 0


async def test_login_after_refusals_still_works_200(app_factory: AppFactory) -> None:
    """The edge refusals above lose nothing: the same user then logs in and reads /me."""
    async with app_factory() as (client, _):
        await signup(client)
        await client.post("/api/login/", **raw_json(f'{{"email": {SURROGATE_JSON}}}'))
        headers = await login_headers(client)
        me = await client.get("/api/me/", headers=headers)

    assert me.status_code == 200


# The same class across the API: one edge check for NUL in every JSON string and query value.


async def test_get_query_nul_422(app_factory: AppFactory) -> None:
    async with app_factory() as (client, _):
        headers = await new_user(client)
        response = await client.get("/api/conversations/?cursor=a%00b", headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["type"] == "string_nul"


async def test_chat_completion_nul_in_unvalidated_field_400(app_factory: AppFactory) -> None:
    # `name` and unknown fields are not stored today; the edge refuses NUL wherever it is.
    async with app_factory() as (client, _):
        headers = await new_user(client)
        body = {
            "model": "rag",
            "messages": [{"role": "user", "name": "a\x00", "content": "Leave days?"}],
        }
        response = await client.post("/v1/chat/completions", json=body, headers=headers)

    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "messages[0].name"
