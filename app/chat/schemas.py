from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.db import MAX_ID
from app.core.validation import StorableStr


class ChatRequest(BaseModel):
    # The upper bound is configurable (CHAT_MAX_MESSAGE_CHARS) and checked by the service.
    message: StorableStr = Field(min_length=1, examples=["What is our refund policy?"])
    conversation_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Your conversation to continue; by default the most recently active one "
        "(a new one if you have none).",
    )
    collection_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1_000,
        description="Answer from these collections' documents alone (each one you belong to); "
        "by default from everything you can see: your documents, your collections', shared.",
    )


class SourceRead(BaseModel):
    document_id: int
    title: str
    chunk_id: str
    score: float
    snippet: str


class ChatResponse(BaseModel):
    response: str
    sources: list[SourceRead] = Field(default_factory=list)
    conversation_id: int


class FeedbackRead(BaseModel):
    """The caller's rating of a bot answer (PUT /api/messages/{id}/feedback/)."""

    rating: Literal["up", "down"]
    comment: str | None
    updated_at: datetime


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    role: Literal["user", "bot"]
    content: str
    timestamp: datetime
    sources: list[SourceRead] | None = None
    feedback: FeedbackRead | None = Field(
        default=None, description="Your rating of a bot answer; null when unrated."
    )
