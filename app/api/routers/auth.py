from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.accounts.service import AccountDeletion
from app.api.deps import AuthServiceDep, NoStore, StateDep
from app.api.principal import CurrentUser, LoginTokenPrincipal
from app.api.ratelimits import LoginRateLimit, PasswordCheckRateLimit, RefreshRateLimit
from app.auth.schemas import (
    LoginRequest,
    LogoutRequest,
    OAuth2Token,
    PasswordConfirmation,
    RefreshedTokens,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserRead,
    normalize_email,
)
from app.core.errors import (
    EmailTaken,
    InvalidCredentials,
    MalformedBody,
    NotAuthenticated,
    PermissionDenied,
    error_responses,
)
from app.core.ratelimit import TooManyRequests

router = APIRouter(prefix="/api", tags=["auth"])


@router.post(
    "/signup/",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=error_responses(MalformedBody, EmailTaken),
)
async def signup(body: UserCreate, service: AuthServiceDep) -> UserRead:
    """Create an account. Emails are unique regardless of case."""
    user = await service.register(body)
    return UserRead.model_validate(user)


@router.post(
    "/login/",
    response_model=TokenPair,
    responses=error_responses(MalformedBody, InvalidCredentials, TooManyRequests),
    dependencies=[NoStore, LoginRateLimit],
)
async def login(body: LoginRequest, service: AuthServiceDep) -> TokenPair:
    """Exchange email and password for an access and a refresh token."""
    user = await service.authenticate(body.email, body.password)
    return await service.issue_tokens(user)


@router.post(
    "/token/refresh/",
    response_model=RefreshedTokens,
    responses=error_responses(MalformedBody, NotAuthenticated, TooManyRequests),
    dependencies=[NoStore, RefreshRateLimit],
)
async def refresh(body: RefreshRequest, service: AuthServiceDep) -> RefreshedTokens:
    """Rotate a refresh token: it is spent, and a new pair is returned."""
    pair = await service.rotate(body.refresh)
    return RefreshedTokens(access=pair.access, refresh=pair.refresh)


@router.post(
    "/token/",
    response_model=OAuth2Token,
    responses=error_responses(MalformedBody, InvalidCredentials, TooManyRequests),
    dependencies=[NoStore, LoginRateLimit],
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], service: AuthServiceDep
) -> OAuth2Token:
    """OAuth2 password flow (`username` is the email), for the Authorize button of /docs."""
    email = normalize_email(form.username)
    if "\x00" in email:  # no account can have it, and PostgreSQL cannot compare it
        raise InvalidCredentials()
    user = await service.authenticate(email, form.password)
    pair = await service.issue_tokens(user)
    return OAuth2Token(access_token=pair.access, refresh_token=pair.refresh)


@router.get("/me/", response_model=UserRead, responses=error_responses(NotAuthenticated))
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)


@router.post(
    "/logout/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(MalformedBody, NotAuthenticated),
)
async def logout(body: LogoutRequest, service: AuthServiceDep) -> Response:
    """Revoke the refresh token and every token rotated from the same login. Access tokens
    already issued expire on their own (ACCESS_TOKEN_EXPIRE_MINUTES)."""
    await service.logout(body.refresh)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def get_account_deletion(state: StateDep) -> AccountDeletion:
    return AccountDeletion(state["sessions"], state["hasher"], state["documents"])


@router.delete(
    "/me/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(
        MalformedBody, NotAuthenticated, InvalidCredentials, PermissionDenied, TooManyRequests
    ),
    dependencies=[PasswordCheckRateLimit],
)
async def delete_me(
    body: PasswordConfirmation,
    principal: LoginTokenPrincipal,
    deletion: Annotated[AccountDeletion, Depends(get_account_deletion)],
) -> Response:
    """Delete your account and everything it owns: messages, conversations, documents and
    their vectors, tokens and API keys. Shared documents you added as an administrator stay
    in the shared knowledge base. Needs your password and a login token (an API key is
    refused with 403); the password checks count against the login limit of the account."""
    await deletion.delete(principal.user, body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
