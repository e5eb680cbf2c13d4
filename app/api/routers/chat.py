from __future__ import annotations

import functools
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from app.api.access import CurrentAccess, still_reaches
from app.api.deps import MAX_ID, SettingsDep, StateDep
from app.api.principal import CurrentPrincipal, CurrentUser
from app.api.ratelimits import ChatRateLimit
from app.chat.history_json import messages_json
from app.chat.schemas import ChatRequest, ChatResponse, MessageRead, SourceRead
from app.chat.service import ChatService
from app.core.errors import (
    InvalidInput,
    MalformedBody,
    NotAuthenticated,
    NotFound,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_responses,
)
from app.core.ratelimit import TooManyRequests
from app.feedback.repository import with_feedback
from app.feedback.service import feedback_of_rows

# Tags per route. The conversation routes are not nested in this router (app/main.py includes
# them): a nested router keeps only its own prefix in the route template metrics label with.
router = APIRouter(prefix="/api")


async def get_chat_service(state: StateDep) -> ChatService:
    settings = state["settings"]
    return ChatService(
        state["sessions"],
        state["pipeline"],
        max_message_chars=settings.chat_max_message_chars,
        title_chars=settings.conversation_title_chars,
        memory_messages=settings.chat_memory_max_messages,
        keepalive_seconds=settings.sse_keepalive_seconds,
        usage=state["usage"],
    )


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


@router.post(
    "/chat/",
    tags=["chat"],
    response_model=ChatResponse,
    responses=error_responses(
        MalformedBody,
        NotAuthenticated,
        NotFound,
        InvalidInput,
        UpstreamError,
        UpstreamUnavailable,
        UpstreamTimeout,
        TooManyRequests,
    ),
    dependencies=[ChatRateLimit],
)
async def chat(
    body: ChatRequest, user: CurrentUser, access: CurrentAccess, service: ChatServiceDep
) -> ChatResponse:
    """Answer a question from the knowledge base, citing its sources, as a turn of a
    conversation (its earlier turns are the memory). `collection_ids` narrows retrieval to
    those collections."""
    turn = await service.reply(
        user,
        body.message,
        conversation_id=body.conversation_id,
        visibility=access.visibility(body.collection_ids),
    )
    return ChatResponse(
        response=turn.answer.text,
        sources=[SourceRead.model_validate(s, from_attributes=True) for s in turn.answer.sources],
        conversation_id=turn.conversation_id,
    )


@router.post(
    "/chat/stream/",
    tags=["chat"],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `sources`, `delta` (repeated), then `done` "
            "(`{id, response, conversation_id}`) or `error` (`{error, detail}`); SSE comments "
            "(`: keepalive`) while the upstream is silent.",
        },
        **error_responses(
            MalformedBody,
            NotAuthenticated,
            NotFound,
            InvalidInput,
            UpstreamError,
            UpstreamUnavailable,
            UpstreamTimeout,
            TooManyRequests,
        ),
    },
    dependencies=[ChatRateLimit],
)
async def chat_stream(
    body: ChatRequest,
    principal: CurrentPrincipal,
    access: CurrentAccess,
    service: ChatServiceDep,
    state: StateDep,
) -> StreamingResponse:
    """Like `POST /api/chat/`, with the answer streamed as it is generated. The stream
    outlives this request's check of the credential: it re-checks the caller (and the
    collections the turn may draw on) every `STREAM_PRINCIPAL_CHECK_SECONDS`, and ends with
    an `error` event (`credentials_revoked`) once they no longer hold."""
    visibility = access.visibility(body.collection_ids)
    reply = await service.stream_reply(
        principal.user,
        body.message,
        conversation_id=body.conversation_id,
        visibility=visibility,
    )
    return StreamingResponse(
        reply.events(
            still_valid=functools.partial(
                still_reaches, state, principal, visibility.collection_ids
            ),
            check_seconds=state["settings"].stream_principal_check_seconds,
        ),
        media_type="text/event-stream",
        # Ask reverse proxies (nginx) not to buffer the stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/chat-history/",
    tags=["chat"],
    response_model=list[MessageRead],
    responses=error_responses(NotAuthenticated, NotFound),
)
async def chat_history(
    user: CurrentUser,
    service: ChatServiceDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, description="Newest messages to return")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only messages older than this id")
    ] = None,
    conversation_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this conversation's messages")
    ] = None,
) -> Response:
    """The user's messages, oldest first: the newest `limit`, or those before `before`."""
    limit = min(limit or settings.chat_history_default_limit, settings.chat_history_max_limit)
    # One session and one query: the messages and their feedback together.
    rows = await service.history(
        user,
        limit=limit,
        before_id=before,
        conversation_id=conversation_id,
        extend=with_feedback,
    )
    # Serialized in one pass, not validated row by row (the response_model documents it).
    return Response(messages_json(rows, feedback_of_rows(rows)), media_type="application/json")
