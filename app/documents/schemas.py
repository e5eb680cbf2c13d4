from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from app.core.db import MAX_ID
from app.core.validation import StorableStr, no_nul

# The constraints before the NUL check: placed after a validator (as in `StorableStr`, which
# is `str` plus one), pydantic drops `strip_whitespace`, and a blank title passed `min_length`.
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(no_nul),
]


class DocumentCreate(BaseModel):
    title: Title
    content: StorableStr = Field(min_length=1)
    shared: bool = Field(default=False, description="Visible to every user (admins only)")
    collection_id: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ID,
        description="Add it to this collection (editors and owners) instead of privately.",
    )

    @field_validator("content")
    @classmethod
    def _has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("The document contains no text.")
        return value


class DocumentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: Literal["processing", "ready", "failed", "deleting"]
    chunks: int
    shared: bool
    collection_id: int | None = None
    filename: str | None
    content_type: str
    error: str | None = None
    created_at: datetime
    updated_at: datetime
