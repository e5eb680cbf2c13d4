"""The one principal: the request's credential (a JWT access token or an `sk-...` API key,
sent as `Authorization: Bearer ...`) resolved once into a `Principal`. Nothing else decodes
access tokens or looks up API keys; REST, `/v1`, the rate limits and MCP all depend on this."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import or_, select

from app.api.deps import StateDep
from app.api.state import State
from app.apikeys.hashing import derive_pepper, looks_like_api_key
from app.apikeys.models import ApiKey
from app.apikeys.service import authenticate_api_key
from app.auth.models import User
from app.auth.principal import Principal
from app.auth.security import InvalidToken
from app.auth.service import issued_to, user_id_of
from app.core.db import utcnow
from app.core.errors import NotAuthenticated, PermissionDenied

# Swagger's "Authorize" posts the password form to /api/token/; every client may instead send
# an API key the same way (`Authorization: Bearer sk-...`), which is what the OpenAI SDKs do.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/api/token/",
    auto_error=False,
    description="A JWT access token (POST /api/login/) or a personal API key (`sk-...`).",
)


async def resolve_principal(state: State, token: str) -> Principal:
    """The caller behind a bearer credential, or `NotAuthenticated`."""
    settings = state["settings"]
    if looks_like_api_key(token):
        return await authenticate_api_key(
            state["sessions"],
            token,
            pepper=derive_pepper(settings),
            touch_interval=timedelta(seconds=settings.api_key_last_used_interval_seconds),
        )
    try:
        claims = state["tokens"].decode(token, "access")
        user_id = user_id_of(claims)
    except InvalidToken as exc:
        raise NotAuthenticated() from exc
    # A short session of its own: the request must not hold a pooled connection while, say,
    # the chat endpoint waits on the LLM.
    async with state["sessions"]() as session:
        user = await session.get(User, user_id)
    if not issued_to(user, claims):
        raise NotAuthenticated("The account no longer exists or is disabled.")
    return Principal(user=user)


async def still_valid(state: State, principal: Principal) -> bool:
    """Whether a principal resolved earlier still holds, for responses that outlive the
    moment of authentication (a stream): the account exists and is active and, for an API
    key, the key is neither revoked nor expired. One short query on a session of its own."""
    user = principal.user
    if principal.key_id is None:
        query = select(User.id).where(User.id == user.id, User.is_active.is_(True))
    else:
        query = (
            select(ApiKey.id)
            .join(User, User.id == ApiKey.user_id)
            .where(
                ApiKey.id == principal.key_id,
                ApiKey.user_id == user.id,
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > utcnow()),
                User.is_active.is_(True),
            )
        )
    async with state["sessions"]() as session:
        return (await session.execute(query)).first() is not None


async def get_principal(
    state: StateDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    if not token:
        raise NotAuthenticated()
    return await resolve_principal(state, token)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(get_current_user)]


ADMIN_SCOPE = "admin"


async def get_current_admin(principal: CurrentPrincipal) -> Principal:
    """An administrator, signed in with a login token or with one of their API keys created
    with the `admin` scope; any other key is refused, even an administrator's."""
    if not principal.user.is_admin:
        raise PermissionDenied("Administrators only.")
    if principal.via_api_key and ADMIN_SCOPE not in principal.scopes:
        raise PermissionDenied("This API key has no admin scope.")
    return principal


CurrentAdmin = Annotated[Principal, Depends(get_current_admin)]


async def require_login_token(principal: CurrentPrincipal) -> Principal:
    """For what a leaked API key must not be able to do (mint keys that outlive its
    revocation, delete the account): a JWT from a password login only."""
    if principal.via_api_key:
        raise PermissionDenied("API keys cannot do this; use a login token.")
    return principal


LoginTokenPrincipal = Annotated[Principal, Depends(require_login_token)]
