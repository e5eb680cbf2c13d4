"""Rate-limit route dependencies: per client IP and per account on the login and token
endpoints, per account on every other password check (account deletion), per user on chat,
uploads and embeddings. A refused request is a `429` with `Retry-After`, in
the API's error shape (OpenAI's under /v1). Each route adds one, e.g.
`dependencies=[ChatRateLimit]`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.api.deps import StateDep
from app.api.principal import CurrentPrincipal, LoginTokenPrincipal
from app.auth.schemas import normalize_email
from app.auth.security import InvalidToken
from app.auth.service import user_id_of
from app.core.config import Settings
from app.core.ratelimit import RateLimiter, account_key, client_ip
from app.core.validation import is_form_media_type, is_json_media_type


async def get_rate_limiter(state: StateDep) -> RateLimiter:  # async: no thread-pool hop
    return state["ratelimiter"]


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


async def _body_field(request: Request, name: str) -> str | None:
    """A field of the already parsed JSON or form body (FastAPI caches both on the request),
    read for every media-type spelling FastAPI itself parses (`Application/JSON`,
    `application/merge-patch+json`, forms); None when absent or malformed (validation answers
    those)."""
    value: Any
    content_type = request.headers.get("content-type")
    if is_json_media_type(content_type):
        try:
            body = await request.json()
        except ValueError:
            return None
        value = body.get(name) if isinstance(body, dict) else None
    elif is_form_media_type(content_type):
        try:
            value = (await request.form()).get(name)
        except Exception:  # a malformed form: the route's validation answers
            return None
    else:
        return None
    return value if isinstance(value, str) and value else None


async def _limit_credentials(
    request: Request, limiter: RateLimiter, settings: Settings, account: str | None
) -> None:
    await limiter.hit(
        "login-ip",
        settings.rate_limit_login_per_ip_per_minute,
        client_ip(request, limiter.trusted),
    )
    if account is not None:
        await limiter.hit(
            "login-account", settings.rate_limit_login_per_account_per_minute, account
        )


async def limit_login(request: Request, limiter: RateLimiterDep, state: StateDep) -> None:
    """POST /api/login/ (`email`) and /api/token/ (`username`): per IP, then per account."""
    if not limiter.enabled:
        return
    email = await _body_field(request, "email") or await _body_field(request, "username")
    account = account_key(normalize_email(email)) if email else None
    await _limit_credentials(request, limiter, state["settings"], account)


async def limit_refresh(request: Request, limiter: RateLimiterDep, state: StateDep) -> None:
    """POST /api/token/refresh/: per IP, and per account when the token names one."""
    if not limiter.enabled:
        return
    account = None
    token = await _body_field(request, "refresh")
    if token is not None:
        try:
            account = f"user:{user_id_of(state['tokens'].decode(token, 'refresh'))}"
        except InvalidToken:
            account = None  # refused by the route; the IP limit still counts it
    await _limit_credentials(request, limiter, state["settings"], account)


async def limit_chat(principal: CurrentPrincipal, limiter: RateLimiterDep, state: StateDep) -> None:
    # One bucket per user for /api/chat/ and /v1: a user's API keys and JWTs share one count.
    await limiter.hit(
        "chat", state["settings"].rate_limit_chat_per_minute, f"user:{principal.user.id}"
    )


async def limit_upload(
    principal: CurrentPrincipal, limiter: RateLimiterDep, state: StateDep
) -> None:
    await limiter.hit(
        "upload", state["settings"].rate_limit_upload_per_minute, f"user:{principal.user.id}"
    )


async def limit_password_check(
    principal: LoginTokenPrincipal, limiter: RateLimiterDep, state: StateDep
) -> None:
    """A password check outside login (account deletion) counts against the same per-account
    limit as login: a stolen access token is no unlimited password oracle. Once the limit
    trips, even the right password is refused until the window passes, as for login."""
    await limiter.hit(
        "login-account",
        state["settings"].rate_limit_login_per_account_per_minute,
        account_key(normalize_email(principal.user.email)),
    )


async def limit_embeddings(
    principal: CurrentPrincipal, limiter: RateLimiterDep, state: StateDep
) -> None:
    # Per user, whichever credential: each call may hold many inputs of encoder time.
    await limiter.hit(
        "embeddings",
        state["settings"].rate_limit_embeddings_per_minute,
        f"user:{principal.user.id}",
    )


LoginRateLimit = Depends(limit_login)
RefreshRateLimit = Depends(limit_refresh)
ChatRateLimit = Depends(limit_chat)
UploadRateLimit = Depends(limit_upload)
PasswordCheckRateLimit = Depends(limit_password_check)
EmbeddingsRateLimit = Depends(limit_embeddings)
