"""Operations endpoints: `GET /healthz` (alive), `GET /readyz` (able to serve) and
`GET /metrics` (Prometheus). `/health` (app/main.py) stays as it was."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import Annotated, Literal, cast

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text
from starlette.responses import Response

from app.api.deps import SettingsDep, StateDep
from app.core import metrics
from app.core.db import BreakerState, breaker_of
from app.core.errors import NotAuthenticated, NotFound

logger = logging.getLogger(__name__)

router = APIRouter(tags=["ops"])

# What the lifespan must have built for requests to be served.
BACKENDS = ("embedder", "store", "generator", "pipeline", "documents")
CheckResult = Literal["ok", "timeout", "unreachable", "circuit_open", "missing"]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok", "unavailable"]
    # Every check and its result; `failed` lists those that are not "ok".
    checks: dict[str, CheckResult]
    failed: list[str]
    # The database circuit breaker (DATABASE_BREAKER_*) when not closed: "open" while
    # connects are refused, "half_open" when the next connect will be tried.
    database_circuit: BreakerState | None = None


@router.get("/healthz", response_model=Liveness)
async def healthz() -> Liveness:
    """The process is alive and its event loop answers; no I/O (a liveness probe)."""
    return Liveness()


async def _database(state: StateDep) -> CheckResult:
    breaker = breaker_of(state["engine"])
    if breaker is not None and breaker.state == "open":
        return "circuit_open"  # no connect attempt: the breaker would refuse it anyway
    try:
        async with asyncio.timeout(state["settings"].readiness_timeout_seconds):
            async with state["engine"].connect() as conn:
                await conn.execute(text("SELECT 1"))
    except TimeoutError:
        logger.warning("readiness: the database did not answer in time")
        return "timeout"
    except Exception as exc:
        # The class only: driver messages can hold the connection URL.
        logger.warning("readiness: the database is unreachable (%s)", type(exc).__name__)
        return "unreachable"
    return "ok"


def _built(state: StateDep, name: str) -> bool:
    # The request's state object (a dict in tests, Starlette's State under uvicorn).
    try:
        return cast(Mapping[str, object], state)[name] is not None
    except (KeyError, AttributeError):
        return False


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: `failed` names why"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """Ready to serve (a readiness probe): the database answers within READINESS_TIMEOUT_SECONDS
    and every configured backend was initialised. 503 names what failed."""
    checks: dict[str, CheckResult] = {"database": await _database(state)}
    for name in BACKENDS:
        checks[name] = "ok" if _built(state, name) else "missing"
    failed = [name for name, result in checks.items() if result != "ok"]
    breaker = breaker_of(state["engine"])
    circuit = breaker.state if breaker is not None else None
    body = Readiness(
        status="unavailable" if failed else "ok",
        checks=checks,
        failed=failed,
        database_circuit=circuit if circuit != "closed" else None,
    )
    retry_after = breaker.retry_after() if breaker and checks["database"] == "circuit_open" else 5
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=503 if failed else 200,
        headers={
            "Cache-Control": "no-store",
            **({"Retry-After": str(retry_after)} if failed else {}),
        },
    )


async def _metrics_access(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    if not settings.metrics_enabled:
        raise NotFound()
    if settings.metrics_token is None:
        return
    expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
    if not hmac.compare_digest((authorization or "").encode(), expected):
        raise NotAuthenticated("GET /metrics needs METRICS_TOKEN as a bearer token.")


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(_metrics_access)])
async def metrics_endpoint() -> Response:
    # Multiprocess mode reads one file per worker: off the event loop.
    body = await asyncio.to_thread(metrics.render)
    return Response(body, media_type=metrics.CONTENT_TYPE)
