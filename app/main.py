"""The ASGI app: `create_app(settings)` for tests and embedding, `app` for uvicorn."""

from __future__ import annotations

import copy
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.routing import Route

from app.api.bodylimit import BodyLimit
from app.api.deps import StateDep
from app.api.middleware import UnicodeEdgeMiddleware, install_edge
from app.api.routers.admin import router as admin_router
from app.api.routers.apikeys import router as apikeys_router
from app.api.routers.auth import router as auth_router
from app.api.routers.chat import router as chat_router
from app.api.routers.collections import router as collections_router
from app.api.routers.conversations import router as conversations_router
from app.api.routers.documents import MULTIPART_OVERHEAD
from app.api.routers.documents import router as documents_router
from app.api.routers.feedback import router as feedback_router
from app.api.routers.openai import OPENAI_BODY_PATHS
from app.api.routers.openai import router as openai_router
from app.api.routers.ops import router as ops_router
from app.api.routers.usage import router as usage_router
from app.core.config import Settings, load_settings
from app.core.errors import InternalErrorMiddleware, install_error_handlers
from app.core.logs import configure_logging
from app.core.metrics import RequestMetricsMiddleware
from app.core.requestid import install_request_id
from app.lifespan import make_lifespan
from app.mcp.endpoint import PATH as MCP_PATH
from app.mcp.endpoint import McpEndpoint
from app.openai_compat.errors import install_openai_error_handlers

DOCS_ASSETS = "/static/docs"
OPENAPI_URL = "/openapi.json"
REDOC_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "worker-src 'self' blob:; frame-ancestors 'none'"
)


def _under_root_path(schema: dict[str, Any], root: str) -> dict[str, Any]:
    """The schema as seen through a path prefix: the prefix as server, and OAuth2 flow URLs
    prefixed too. Swagger UI resolves an absolute `tokenUrl` against the host alone, so
    `/api/token/` would bypass the prefix (404 through the proxy)."""
    schema = copy.deepcopy(schema)
    schema["servers"] = [{"url": root}, *schema.get("servers", [])]
    for scheme in schema.get("components", {}).get("securitySchemes", {}).values():
        for flow in scheme.get("flows", {}).values():
            for key in ("tokenUrl", "refreshUrl", "authorizationUrl"):
                url = flow.get(key)
                if isinstance(url, str) and url.startswith("/"):
                    flow[key] = f"{root}{url}"
    return schema


def _install_docs(app: FastAPI) -> None:
    """OpenAPI, Swagger UI and ReDoc, from the bundled assets so they work without a CDN."""
    app.mount(
        DOCS_ASSETS,
        StaticFiles(directory=str(files("fastapi_offline") / "static")),
        name="docs-assets",
    )

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        schema = app.openapi()
        return JSONResponse(_under_root_path(schema, root) if root else schema)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}",
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

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_redoc_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - API reference",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc's sidebar always loads its vendor's logo from a CDN: keep the page on our host.
        page.headers["Content-Security-Policy"] = REDOC_CSP
        return page


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
    configure_logging(settings.log_level, log_format=settings.log_format)
    mcp = McpEndpoint(settings) if settings.mcp_enabled else None
    app = FastAPI(
        title="RAG Chatbot API",
        version="0.1.0",
        description="Ask questions answered from your own knowledge base, with sources.",
        lifespan=make_lifespan(settings, mcp=mcp),
        # Served by _install_docs, so that they can be turned off and follow the path prefix.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_openai_error_handlers(app)
    install_edge(app, settings)
    install_request_id(app)  # outside the edge: every response and log line has the id
    # Innermost: an unhandled error is our JSON 500 and the keep-alive connection survives.
    app.add_middleware(InternalErrorMiddleware, handlers=app.exception_handlers)
    # Inside BodyLimit, which bounds what it buffers; before every route and rate limit.
    app.add_middleware(UnicodeEdgeMiddleware, handlers=app.exception_handlers)
    app.add_middleware(
        BodyLimit,
        default=settings.max_json_body_bytes,
        # A JSON document's `content` is a document: it keeps the upload limit.
        overrides={
            ("POST", "/api/documents/"): settings.max_upload_bytes + MULTIPART_OVERHEAD,
            # OpenAI clients send the whole conversation, or many texts to embed, each time.
            **{("POST", path): settings.openai_max_body_bytes for path in OPENAI_BODY_PATHS},
        },
    )
    # Outside BodyLimit, so its 413s are counted too.
    app.add_middleware(RequestMetricsMiddleware, router=app.router)
    if settings.docs_enabled:
        _install_docs(app)
    _install_openapi(app)
    app.include_router(auth_router)
    app.include_router(chat_router)
    app.include_router(conversations_router)
    app.include_router(documents_router)
    app.include_router(apikeys_router)
    app.include_router(collections_router)
    app.include_router(openai_router)
    app.include_router(ops_router)
    if mcp is not None:
        # A Route, not a Mount: a Mount would redirect `POST /mcp` to `/mcp/`.
        app.router.routes.append(Route(MCP_PATH, endpoint=mcp, name="mcp"))
    app.include_router(feedback_router)
    app.include_router(usage_router)
    app.include_router(admin_router)

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
        app = create_app(load_settings())
        return app
    raise AttributeError(name)
