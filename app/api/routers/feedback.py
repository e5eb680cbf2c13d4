"""Ratings of answers: `PUT`/`DELETE /api/messages/{id}/feedback/` on your own bot messages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from app.api.deps import MAX_ID, SessionDep
from app.api.principal import CurrentUser
from app.core.errors import MalformedBody, NotAuthenticated, error_responses
from app.feedback.schemas import FeedbackRead, FeedbackWrite
from app.feedback.service import FeedbackService, MessageNotFound

router = APIRouter(prefix="/api/messages", tags=["feedback"])

MessageId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def get_feedback_service(session: SessionDep) -> FeedbackService:
    return FeedbackService(session)


FeedbackServiceDep = Annotated[FeedbackService, Depends(get_feedback_service)]


@router.put(
    "/{message_id}/feedback/",
    response_model=FeedbackRead,
    responses=error_responses(MalformedBody, NotAuthenticated, MessageNotFound),
)
async def put_feedback(
    message_id: MessageId, body: FeedbackWrite, user: CurrentUser, service: FeedbackServiceDep
) -> FeedbackRead:
    """Rate one of your bot answers `up` or `down`, with an optional comment (at most 2,000
    characters); a second PUT replaces the first. Questions, other users' messages and
    unknown ids are 404."""
    return await service.put(user, message_id, body)


@router.delete(
    "/{message_id}/feedback/",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(NotAuthenticated, MessageNotFound),
)
async def delete_feedback(
    message_id: MessageId, user: CurrentUser, service: FeedbackServiceDep
) -> Response:
    """Remove your rating of the answer (nothing to remove is no error)."""
    await service.delete(user, message_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
