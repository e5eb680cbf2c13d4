from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from app.auth.dependencies import CurrentUser
from app.chat.schemas import ChatRequest, ChatResponse, MessageRead, SourceRead
from app.chat.service import ChatService
from app.deps import MAX_ID, SettingsDep, StateDep
from app.errors import (
    InvalidInput,
    MalformedBody,
    NotAuthenticated,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_responses,
)

router = APIRouter(prefix="/api", tags=["chat"])


def get_chat_service(state: StateDep) -> ChatService:
    return ChatService(
        state["sessions"],
        state["pipeline"],
        max_message_chars=state["settings"].chat_max_message_chars,
    )


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


@router.post(
    "/chat/",
    response_model=ChatResponse,
    responses=error_responses(
        MalformedBody,
        NotAuthenticated,
        InvalidInput,
        UpstreamError,
        UpstreamUnavailable,
        UpstreamTimeout,
    ),
)
async def chat(body: ChatRequest, user: CurrentUser, service: ChatServiceDep) -> ChatResponse:
    """Answer a question from the knowledge base, citing its sources."""
    answer = await service.reply(user, body.message)
    return ChatResponse(
        response=answer.text,
        sources=[SourceRead.model_validate(s, from_attributes=True) for s in answer.sources],
    )


@router.post(
    "/chat/stream/",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events: `sources`, `delta` (repeated), then `done` "
            "(`{id, response}`) or `error` (`{error, detail}`).",
        },
        **error_responses(
            MalformedBody,
            NotAuthenticated,
            InvalidInput,
            UpstreamError,
            UpstreamUnavailable,
            UpstreamTimeout,
        ),
    },
)
async def chat_stream(
    body: ChatRequest, user: CurrentUser, service: ChatServiceDep
) -> StreamingResponse:
    """Like `POST /api/chat/`, with the answer streamed as it is generated."""
    reply = await service.stream_reply(user, body.message)
    return StreamingResponse(
        reply.events(),
        media_type="text/event-stream",
        # Ask reverse proxies (nginx) not to buffer the stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/chat-history/",
    response_model=list[MessageRead],
    responses=error_responses(NotAuthenticated),
)
async def chat_history(
    user: CurrentUser,
    service: ChatServiceDep,
    settings: SettingsDep,
    limit: Annotated[int | None, Query(ge=1, description="Newest messages to return")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only messages older than this id")
    ] = None,
) -> list[MessageRead]:
    """The user's messages, oldest first: the newest `limit`, or those before `before`."""
    limit = min(limit or settings.chat_history_default_limit, settings.chat_history_max_limit)
    messages = await service.history(user, limit=limit, before_id=before)
    return [MessageRead.model_validate(m) for m in messages]
