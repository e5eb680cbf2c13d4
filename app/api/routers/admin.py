"""The admin API under /api/admin/: users, their usage, answer feedback and the audit log.

Every route takes `CurrentAdmin`: administrators only (403 otherwise), and an API key only
when it was created with the `admin` scope. Every change is written to the audit log."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from app.accounts.service import AccountDeletion
from app.admin.schemas import (
    AdminUserDetail,
    AdminUserPage,
    AdminUserRead,
    AdminUserUpdate,
    AuditPage,
    AuditRead,
)
from app.admin.service import AdminService, AuditLog, LastAdmin, UserNotFound, delete_user
from app.api.deps import MAX_ID, SessionDep, SettingsDep, StateDep
from app.api.principal import CurrentAdmin
from app.api.routers.auth import get_account_deletion
from app.api.routers.usage import Days, check_days
from app.core.config import Settings
from app.core.errors import (
    InvalidInput,
    MalformedBody,
    NotAuthenticated,
    PermissionDenied,
    error_responses,
)
from app.feedback.schemas import RatedAnswerPage, Rating
from app.feedback.service import FeedbackService, export_jsonl
from app.usage.schemas import UsageReport
from app.usage.service import UsageService

router = APIRouter(prefix="/api/admin", tags=["admin"])

UserId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int | None, Query(ge=1, description="Items per page")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]
_DENIED = (NotAuthenticated, PermissionDenied)


def _page_size(limit: int | None, settings: Settings) -> int:
    return min(limit or settings.admin_page_default, settings.admin_page_max)


async def get_admin_service(session: SessionDep, state: StateDep) -> AdminService:
    return AdminService(session, state["usage"])


AdminServiceDep = Annotated[AdminService, Depends(get_admin_service)]


@router.get(
    "/users/", response_model=AdminUserPage, responses=error_responses(*_DENIED, InvalidInput)
)
async def list_users(
    _: CurrentAdmin,
    service: AdminServiceDep,
    settings: SettingsDep,
    q: Annotated[
        str | None, Query(max_length=320, description="Part of the email or username")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AdminUserPage:
    """Users by id, those whose email or username contains `q` (any case)."""
    if q is not None and "\x00" in q:
        raise InvalidInput("q must not contain NUL characters.")
    items, next_cursor = await service.search(
        q=q or None, limit=_page_size(limit, settings), cursor=cursor
    )
    return AdminUserPage(
        items=[AdminUserRead.model_validate(u) for u in items], next_cursor=next_cursor
    )


@router.get(
    "/users/{user_id}/",
    response_model=AdminUserDetail,
    responses=error_responses(*_DENIED, UserNotFound),
)
async def get_user(user_id: UserId, _: CurrentAdmin, service: AdminServiceDep) -> AdminUserDetail:
    """One user with their document, conversation, message, key and token counts."""
    return await service.detail(user_id)


@router.patch(
    "/users/{user_id}/",
    response_model=AdminUserRead,
    responses=error_responses(MalformedBody, *_DENIED, UserNotFound, LastAdmin),
)
async def update_user(
    user_id: UserId, body: AdminUserUpdate, admin: CurrentAdmin, service: AdminServiceDep
) -> AdminUserRead:
    """Enable or disable the account (disabled: its tokens, keys and open streams stop at
    once, its refresh tokens are revoked), grant or remove the admin role, or set its daily
    token budget (null: the default, 0: no limit). The last active administrator cannot be
    disabled or demoted (409)."""
    return AdminUserRead.model_validate(await service.update(admin, user_id, body))


@router.delete(
    "/users/{user_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(*_DENIED, UserNotFound, LastAdmin),
)
async def remove_user(
    user_id: UserId,
    admin: CurrentAdmin,
    state: StateDep,
    deletion: Annotated[AccountDeletion, Depends(get_account_deletion)],
) -> Response:
    """Delete the account and everything it owns, as `DELETE /api/me/` does (documents and
    their vectors, messages, conversations, feedback, usage, tokens, keys). The last active
    administrator cannot be deleted (409)."""
    await delete_user(state["sessions"], deletion, state["usage"], admin, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/usage/", response_model=UsageReport, responses=error_responses(*_DENIED, InvalidInput)
)
async def usage_report(
    _: CurrentAdmin,
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    days: Days = 30,
    user_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> UsageReport:
    """Tokens per user and per UTC day over the last `days` days, heaviest users first."""
    service = UsageService(session, state["usage"])
    return await service.report(days=check_days(days, settings.usage_max_days), user_id=user_id)


@router.get(
    "/feedback/",
    response_model=RatedAnswerPage,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "With `format=jsonl`: every matching rated answer, one JSON object "
            "(RatedAnswer) per line.",
        },
        **error_responses(*_DENIED, InvalidInput),
    },
)
async def list_feedback(
    admin: CurrentAdmin,
    session: SessionDep,
    state: StateDep,
    settings: SettingsDep,
    rating: Rating | None = None,
    since: Annotated[AwareDatetime | None, Query(description="Rated at or after")] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    format: Literal["json", "jsonl"] = "json",
) -> RatedAnswerPage | StreamingResponse:
    """Rated answers, most recently rated first, each with its question, answer, sources and
    comment, a page at a time; `format=jsonl` streams all of them as JSON lines (for
    evaluation tools). Reading them is recorded in the audit log."""
    try:
        since = since.astimezone(UTC) if since else None
    except OverflowError as exc:  # `9999-12-31T23:59:59-05:00` is past year 9999 in UTC
        raise InvalidInput("since is out of range once converted to UTC.") from exc
    filters = {"rating": rating, "since": since.isoformat() if since else None}
    await AuditLog(session).record(admin, f"feedback.read_{format}", "feedback", None, filters)
    if format == "jsonl":
        await session.commit()  # the audit entry, before the stream outlives this session
        return StreamingResponse(
            export_jsonl(
                state["sessions"], rating=rating, since=since, page_size=settings.admin_page_max
            ),
            media_type="application/x-ndjson",
            headers={"Content-Disposition": 'attachment; filename="feedback.jsonl"'},
        )
    return await FeedbackService(session).page(
        limit=_page_size(limit, settings), rating=rating, since=since, cursor=cursor
    )


@router.get("/audit/", response_model=AuditPage, responses=error_responses(*_DENIED, InvalidInput))
async def list_audit(
    _: CurrentAdmin,
    session: SessionDep,
    settings: SettingsDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AuditPage:
    """Administrators' actions, newest first: who, what, on which target, when (kept
    AUDIT_RETENTION_DAYS)."""
    items, next_cursor = await AuditLog(session).page(
        limit=_page_size(limit, settings), cursor=cursor
    )
    return AuditPage(items=[AuditRead.model_validate(e) for e in items], next_cursor=next_cursor)
