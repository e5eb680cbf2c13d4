from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from app.auth.dependencies import AuthServiceDep, CurrentUser
from app.auth.schemas import (
    LoginRequest,
    OAuth2Token,
    RefreshedTokens,
    RefreshRequest,
    TokenPair,
    UserCreate,
    UserRead,
)
from app.errors import (
    EmailTaken,
    InvalidCredentials,
    MalformedBody,
    NotAuthenticated,
    error_responses,
)

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
    responses=error_responses(MalformedBody, InvalidCredentials),
)
async def login(body: LoginRequest, service: AuthServiceDep) -> TokenPair:
    """Exchange email and password for an access and a refresh token."""
    user = await service.authenticate(body.email, body.password)
    return await service.issue_tokens(user)


@router.post(
    "/token/refresh/",
    response_model=RefreshedTokens,
    responses=error_responses(MalformedBody, NotAuthenticated),
)
async def refresh(body: RefreshRequest, service: AuthServiceDep) -> RefreshedTokens:
    """Rotate a refresh token: it is spent, and a new pair is returned."""
    pair = await service.rotate(body.refresh)
    return RefreshedTokens(access=pair.access, refresh=pair.refresh)


@router.post(
    "/token/",
    response_model=OAuth2Token,
    responses=error_responses(MalformedBody, InvalidCredentials),
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], service: AuthServiceDep
) -> OAuth2Token:
    """OAuth2 password flow (`username` is the email), for the Authorize button of /docs."""
    user = await service.authenticate(form.username.strip().lower(), form.password)
    pair = await service.issue_tokens(user)
    return OAuth2Token(access_token=pair.access, refresh_token=pair.refresh)


@router.get("/me/", response_model=UserRead, responses=error_responses(NotAuthenticated))
async def me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
