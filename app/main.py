"""The ASGI app: `create_app(settings)` for tests and embedding, `app` for uvicorn."""

from __future__ import annotations

import logging
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from app.auth.router import router as auth_router
from app.chat.router import router as chat_router
from app.config import Settings
from app.deps import StateDep
from app.documents.router import router as documents_router
from app.errors import install_error_handlers
from app.lifespan import make_lifespan

DOCS_ASSETS = "/static/docs"


def _install_docs(app: FastAPI) -> None:
    """Swagger UI served from the bundled assets, so /docs works without a CDN."""
    app.mount(
        DOCS_ASSETS,
        StaticFiles(directory=str(files("fastapi_offline") / "static")),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def _install_openapi(app: FastAPI) -> None:
    """FastAPI documents 422 bodies as `{"detail": [...]}`; ours carry `error` too."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = {
                    "title": "HTTPValidationError",
                    "type": "object",
                    "required": ["error", "detail"],
                    "properties": {
                        "error": {"type": "string", "const": "validation_error"},
                        "detail": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ValidationError"},
                        },
                    },
                }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    logging.basicConfig(level=settings.log_level.upper())
    app = FastAPI(
        title="RAG Chatbot API",
        version="0.1.0",
        description="Ask questions answered from your own knowledge base, with sources.",
        lifespan=make_lifespan(settings),
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    _install_docs(app)
    _install_openapi(app)
    app.include_router(auth_router)
    app.include_router(chat_router)
    app.include_router(documents_router)

    @app.get("/health", tags=["ops"])
    async def health(state: StateDep) -> dict[str, str]:
        """Liveness and database reachability, for load balancers and HEALTHCHECK."""
        async with state["engine"].connect() as conn:
            await conn.execute(text("SELECT 1"))
        return {"status": "ok"}

    return app


app: FastAPI  # created lazily by __getattr__ below


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the app on first access, not when tests import this module.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
