"""`/api/conversations/`: a user's chat threads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response, status

from app.api.deps import MAX_ID, SessionDep, SettingsDep
from app.api.principal import CurrentUser
from app.api.routers.feedback import FeedbackServiceDep
from app.chat.conversations.schemas import (
    ConversationCreate,
    ConversationMessageRead,
    ConversationPage,
    ConversationRead,
    ConversationUpdate,
    MessagePage,
)
from app.chat.conversations.service import ConversationService
from app.core.errors import InvalidInput, MalformedBody, NotAuthenticated, NotFound, error_responses

# The whole prefix here, included by the app itself: a router nested in another keeps only its
# own prefix in the route template that metrics label requests with.
router = APIRouter(prefix="/api/conversations", tags=["conversations"])

ConversationId = Annotated[int, Path(ge=1, le=MAX_ID)]
Cursor = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page")
]
Limit = Annotated[int | None, Query(ge=1, description="Page size (capped by the server)")]


def get_conversation_service(session: SessionDep, settings: SettingsDep) -> ConversationService:
    return ConversationService(session, title_chars=settings.conversation_title_chars)


ConversationServiceDep = Annotated[ConversationService, Depends(get_conversation_service)]


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=ConversationRead,
    responses=error_responses(MalformedBody, NotAuthenticated, InvalidInput),
)
async def create_conversation(
    user: CurrentUser, service: ConversationServiceDep, body: ConversationCreate | None = None
) -> ConversationRead:
    """Start a conversation; untitled, it takes its first question (shortened) as title."""
    conversation = await service.create(user.id, body.title if body else None)
    return ConversationRead.model_validate(conversation)


@router.get(
    "/",
    response_model=ConversationPage,
    responses=error_responses(NotAuthenticated, InvalidInput),
)
async def list_conversations(
    user: CurrentUser,
    service: ConversationServiceDep,
    settings: SettingsDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> ConversationPage:
    """Your conversations, most recent activity first."""
    size = min(limit or settings.conversations_page_default, settings.conversations_page_max)
    items, next_cursor = await service.page(user.id, limit=size, cursor=cursor)
    return ConversationPage(
        items=[ConversationRead.model_validate(c) for c in items], next_cursor=next_cursor
    )


@router.get(
    "/{conversation_id}/",
    response_model=ConversationRead,
    responses=error_responses(NotAuthenticated, NotFound),
)
async def get_conversation(
    conversation_id: ConversationId, user: CurrentUser, service: ConversationServiceDep
) -> ConversationRead:
    return ConversationRead.model_validate(await service.get(user.id, conversation_id))


@router.patch(
    "/{conversation_id}/",
    response_model=ConversationRead,
    responses=error_responses(MalformedBody, NotAuthenticated, NotFound, InvalidInput),
)
async def rename_conversation(
    conversation_id: ConversationId,
    body: ConversationUpdate,
    user: CurrentUser,
    service: ConversationServiceDep,
) -> ConversationRead:
    conversation = await service.rename(user.id, conversation_id, body.title)
    return ConversationRead.model_validate(conversation)


@router.delete(
    "/{conversation_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=error_responses(NotAuthenticated, NotFound),
)
async def delete_conversation(
    conversation_id: ConversationId, user: CurrentUser, service: ConversationServiceDep
) -> Response:
    """Delete the conversation and its messages."""
    await service.delete(user.id, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{conversation_id}/messages/",
    response_model=MessagePage,
    responses=error_responses(NotAuthenticated, NotFound, InvalidInput),
)
async def list_conversation_messages(
    conversation_id: ConversationId,
    user: CurrentUser,
    service: ConversationServiceDep,
    feedback: FeedbackServiceDep,
    settings: SettingsDep,
    limit: Limit = None,
    cursor: Cursor = None,
) -> MessagePage:
    """The conversation's messages, oldest first, each bot answer with its sources."""
    size = min(
        limit or settings.conversation_messages_page_default,
        settings.conversation_messages_page_max,
    )
    items, next_cursor = await service.messages_page(
        user.id, conversation_id, limit=size, cursor=cursor
    )
    rated = await feedback.of_messages(user.id, [m.id for m in items if m.role == "bot"])
    return MessagePage(
        items=[
            ConversationMessageRead.model_validate(m).model_copy(
                update={"feedback": rated.get(m.id)}
            )
            for m in items
        ],
        next_cursor=next_cursor,
    )
