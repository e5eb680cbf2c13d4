from __future__ import annotations

import httpx

from app.main import create_app
from app.testing import running_app
from tests.conftest import make_settings, new_user


async def test_docs_page_loads_bundled_assets_only(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/static/docs/swagger-ui-bundle.js" in page.text
    assert "cdn." not in page.text
    assert (await client.get("/static/docs/swagger-ui-bundle.js")).status_code == 200


async def test_openapi_documents_bearer_auth_and_errors(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["OAuth2PasswordBearer"]["flows"]["password"]["tokenUrl"] == "/api/token/"
    chat = spec["paths"]["/api/chat/"]["post"]
    assert {"200", "401", "422", "502", "503", "504"} <= set(chat["responses"])
    assert chat["security"] == [{"OAuth2PasswordBearer": []}]
    assert {"/api/signup/", "/api/login/", "/api/chat-history/", "/api/documents/"} <= set(
        spec["paths"]
    )
    validation = spec["components"]["schemas"]["HTTPValidationError"]
    assert validation["required"] == ["error", "detail"]
    upload = spec["paths"]["/api/documents/"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(upload)


async def test_health_reports_ok(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nope/")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found"}


async def test_wrong_method_is_json_405(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/chat/")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


async def test_unexpected_error_is_generic_500(database_url: str) -> None:
    app = create_app(make_settings(database_url))
    # Starlette re-raises after sending the 500 (for server logs): look at the response only.
    async with running_app(app, raise_app_exceptions=False) as (client, state):

        async def broken(*_: object, **__: object) -> None:
            raise RuntimeError("secret internal detail")

        state["pipeline"].retrieve = broken  # type: ignore[method-assign, assignment]
        headers = await new_user(client)
        response = await client.post("/api/chat/", json={"message": "hi"}, headers=headers)
        assert response.status_code == 500
        assert response.json() == {"error": "internal_error", "detail": "Internal server error."}
        assert "secret internal detail" not in response.text


async def test_body_not_utf8_is_documented_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/signup/", content=b"\xc3\x28", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
    spec = (await client.get("/openapi.json")).json()
    assert "400" in spec["paths"]["/api/signup/"]["post"]["responses"]
