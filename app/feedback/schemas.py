from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.chat.schemas import FeedbackRead, SourceRead
from app.core.validation import StorableStr

Rating = Literal["up", "down"]
__all__ = ["FeedbackRead", "FeedbackWrite", "RatedAnswer", "RatedAnswerPage", "Rating"]
COMMENT_MAX_CHARS = 2_000


def _encodable(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON)
        raise ValueError("Text must be valid Unicode (no lone surrogates).") from None
    return value


class FeedbackWrite(BaseModel):
    rating: Rating
    comment: Annotated[StorableStr, AfterValidator(_encodable)] | None = Field(
        default=None, max_length=COMMENT_MAX_CHARS
    )


class RatedAnswer(BaseModel):
    """One rated answer with what an evaluation needs: the question it answered, the answer,
    its sources and the rating."""

    message_id: int
    conversation_id: int
    user_id: int
    rating: Rating
    comment: str | None
    rated_at: datetime
    question: str | None = Field(description="The user message before the answer.")
    answer: str
    sources: list[SourceRead] | None
    answered_at: datetime


class RatedAnswerPage(BaseModel):
    items: list[RatedAnswer]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
