from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer

from app.apikeys.dependencies import resolve_api_key
from app.apikeys.hashing import looks_like_api_key
from app.auth.models import User
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.security import InvalidToken
from app.auth.service import AuthService, issued_to, user_id_of
from app.deps import SessionDep, StateDep
from app.errors import NotAuthenticated, PermissionDenied

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/token/", auto_error=False)


def get_auth_service(session: SessionDep, state: StateDep) -> AuthService:
    settings = state["settings"]
    return AuthService(
        UserRepository(session),
        RefreshTokenRepository(session),
        state["hasher"],
        state["tokens"],
        access_lifetime=settings.access_token_lifetime,
        refresh_lifetime=settings.refresh_token_lifetime,
    )


async def get_current_user(
    state: StateDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> User:
    if not token:
        raise NotAuthenticated()
    if looks_like_api_key(token):  # a personal API key (app/apikeys)
        return (await resolve_api_key(state, token)).user
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
    return user


async def get_current_admin(user: Annotated[User, Depends(get_current_user)]) -> User:
    if not user.is_admin:
        raise PermissionDenied("Administrators only.")
    return user


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
CurrentUser = Annotated[User, Depends(get_current_user)]
CurrentAdmin = Annotated[User, Depends(get_current_admin)]
