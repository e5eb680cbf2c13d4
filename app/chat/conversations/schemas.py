from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.chat.schemas import MessageRead
from app.core.validation import StorableStr

TITLE_MAX_CHARS = 200


class ConversationCreate(BaseModel):
    title: StorableStr | None = Field(
        default=None,
        max_length=TITLE_MAX_CHARS,
        description="Defaults to the first question, shortened.",
    )


class ConversationUpdate(BaseModel):
    title: StorableStr = Field(min_length=1, max_length=TITLE_MAX_CHARS)


class ConversationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str = Field(description="Empty until the first question when created untitled.")
    created_at: datetime
    updated_at: datetime = Field(description="The last message or rename.")


class ConversationMessageRead(MessageRead):
    """A message of the history, and whether a streamed answer was cut short."""

    interrupted: bool = Field(
        default=False, description="A streamed answer cut short when the client went away."
    )


class ConversationPage(BaseModel):
    items: list[ConversationRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )


class MessagePage(BaseModel):
    items: list[ConversationMessageRead]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
