"""The HTTP edge in-process: docs under a root path, security headers, CORS on every response
including errors and 500s, and `Allow` headers naming every method of a path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.exceptions import HTTPException

from app.api.middleware import SECURITY_HEADERS
from app.core.config import Settings
from app.main import create_app
from app.testing import running_app
from tests.conftest import AppFactory, make_settings, new_user

ORIGIN = "http://front.example.test"
OTHER_ORIGIN = "http://evil.example.test"


@pytest.fixture
async def cors_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The app with ORIGIN allowed, and test-only routes that fail on purpose."""
    app = create_app(make_settings(database_url, cors_origins=[ORIGIN], max_json_body_bytes=1024))

    @app.get("/test/fail/{status}")
    async def fail(status: int) -> None:
        if status == 500:
            raise RuntimeError("boom")
        raise HTTPException(status, headers={"Retry-After": "7"})

    # Starlette re-raises after sending the 500 (for server logs): look at the response only.
    async with running_app(app, raise_app_exceptions=False) as (client, _):
        yield client


def preflight(method: str = "POST", headers: str = "authorization,content-type") -> dict[str, str]:
    return {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_redoc_page_loads_bundled_assets_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/redoc")
    assert page.status_code == 200
    assert "/static/docs/redoc.standalone.js" in page.text
    assert "cdn." not in page.text
    assert "fonts.googleapis" not in page.text
    # ReDoc's sidebar logo comes from its vendor's CDN unless the page's policy refuses it.
    assert "img-src 'self' data:" in page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    assert (await client.get("/static/docs/redoc.standalone.js")).status_code == 200


async def test_docs_disabled_docs_and_schema_are_404(app_factory: AppFactory) -> None:
    async with app_factory(docs_enabled=False) as (client, _):
        for path in ("/docs", "/redoc", "/openapi.json", "/static/docs/swagger-ui.css"):
            assert (await client.get(path)).status_code == 404, path
        assert (await client.get("/health")).status_code == 200


async def test_openapi_under_root_path_prefixes_server_and_token_url(
    app_factory: AppFactory,
) -> None:
    async with app_factory(root_path="/chatbot") as (client, _):
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert spec["servers"][0] == {"url": "/chatbot"}
    flow = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "/chatbot/api/token/"
    assert "'/chatbot/openapi.json'" in docs.text
    assert "/chatbot/static/docs/swagger-ui-bundle.js" in docs.text


async def test_openapi_without_root_path_is_unprefixed(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "servers" not in spec
    flow = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
    assert flow["tokenUrl"] == "/api/token/"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health"), ("GET", "/api/nope/"), ("GET", "/api/me/"), ("GET", "/docs")],
)
async def test_any_response_carries_security_headers(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name


async def test_forced_500_carries_security_headers(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/test/fail/500")
    assert response.status_code == 500
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_preflight_allowed_origin_allows_json_bearer_and_stream(
    cors_client: httpx.AsyncClient,
) -> None:
    for path in ("/api/signup/", "/api/chat/", "/api/chat/stream/", "/api/documents/"):
        response = await cors_client.options(path, headers=preflight())
        assert response.status_code == 200, path
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "content-type"} <= set(allowed.split(", "))
        assert "Access-Control-Allow-Credentials" not in response.headers


async def test_preflight_delete_allowed_origin_is_allowed(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options(
        "/api/documents/1/", headers=preflight("DELETE", "authorization")
    )
    assert response.status_code == 200
    assert "DELETE" in response.headers["Access-Control-Allow-Methods"]


async def test_preflight_unknown_origin_is_refused(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.options(
        "/api/chat/", headers={**preflight(), "Origin": OTHER_ORIGIN}
    )
    assert response.status_code == 400
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_default_settings_allow_no_cross_origin(client: httpx.AsyncClient) -> None:
    refused = await client.options("/api/chat/", headers=preflight())
    simple = await client.get("/health", headers={"Origin": ORIGIN})
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert simple.status_code == 200
    assert "Access-Control-Allow-Origin" not in simple.headers


async def test_origin_regex_matching_origin_is_allowed(app_factory: AppFactory) -> None:
    regex = r"https://[a-z]+\.example\.com"
    async with app_factory(cors_origin_regex=regex) as (client, _):
        ok = await client.get("/health", headers={"Origin": "https://app.example.com"})
        other = await client.get("/health", headers={"Origin": "https://app.example.org"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_allowed_origin_success_exposes_headers(cors_client: httpx.AsyncClient) -> None:
    response = await cors_client.get("/health", headers={"Origin": ORIGIN})
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "X-Request-ID"} <= exposed
    assert "origin" in response.headers["Vary"].lower()


async def _error_responses(client: httpx.AsyncClient) -> dict[int, httpx.Response]:
    origin = {"Origin": ORIGIN}
    return {
        401: await client.get("/api/me/", headers=origin),
        413: await client.post(
            "/api/signup/",
            content=b'{"email": "' + b"a" * 4096 + b'"}',
            headers={**origin, "Content-Type": "application/json"},
        ),
        422: await client.post("/api/signup/", json={"email": "nope"}, headers=origin),
        429: await client.get("/test/fail/429", headers=origin),
        500: await client.get("/test/fail/500", headers=origin),
        503: await client.get("/test/fail/503", headers=origin),
    }


async def test_error_responses_carry_cors_headers(cors_client: httpx.AsyncClient) -> None:
    responses = await _error_responses(cors_client)
    for status, response in responses.items():
        assert response.status_code == status, (status, response.text)
        assert response.headers.get("Access-Control-Allow-Origin") == ORIGIN, status
        assert response.json()["error"], status
    assert responses[429].headers["Retry-After"] == "7"
    assert "retry-after" in responses[429].headers["Access-Control-Expose-Headers"].lower()


async def test_upstream_500_from_route_carries_cors_headers(database_url: str) -> None:
    app = create_app(make_settings(database_url, cors_origins=[ORIGIN]))
    async with running_app(app, raise_app_exceptions=False) as (client, state):

        async def broken(*_: object, **__: object) -> None:
            raise RuntimeError("secret internal detail")

        state["pipeline"].retrieve = broken  # type: ignore[method-assign, assignment]
        headers = await new_user(client)
        response = await client.post(
            "/api/chat/", json={"message": "hi"}, headers={**headers, "Origin": ORIGIN}
        )
    assert response.status_code == 500
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.json() == {"error": "internal_error", "detail": "Internal server error."}


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/documents/", "GET, OPTIONS, POST"),
        ("PATCH", "/api/documents/1/", "DELETE, GET, OPTIONS"),
        ("GET", "/api/chat/", "OPTIONS, POST"),
    ],
)
async def test_wrong_method_405_allow_names_every_method(
    client: httpx.AsyncClient, method: str, path: str, allow: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/api/documents/", "GET, OPTIONS, POST"),
        ("/api/documents/7/", "DELETE, GET, OPTIONS"),
    ],
)
async def test_options_lists_every_method(client: httpx.AsyncClient, path: str, allow: str) -> None:
    response = await client.options(path)
    assert response.status_code == 204
    assert response.headers["Allow"] == allow
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_options_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    assert (await client.options("/api/nope/")).status_code == 404


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", []),
        ("http://a.test", ["http://a.test"]),
        ("http://a.test, http://b.test:8080", ["http://a.test", "http://b.test:8080"]),
        ('["http://a.test", "http://b.test"]', ["http://a.test", "http://b.test"]),
    ],
)
def test_cors_origins_from_env_comma_or_json_list(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: list[str]
) -> None:
    monkeypatch.setenv("CORS_ORIGINS", raw)
    settings = Settings(_env_file=None)
    assert settings.cors_origins == expected


@pytest.mark.parametrize(("raw", "expected"), [("/chatbot/", "/chatbot"), ("", "")])
def test_root_path_setting_is_normalized(raw: str, expected: str) -> None:
    assert Settings(_env_file=None, root_path=raw).root_path == expected


def test_root_path_without_leading_slash_is_refused() -> None:
    with pytest.raises(ValueError, match="ROOT_PATH"):
        Settings(_env_file=None, root_path="chatbot")
