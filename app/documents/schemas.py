from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class DocumentCreate(BaseModel):
    title: Title
    content: str = Field(min_length=1)
    shared: bool = Field(default=False, description="Visible to every user (admins only)")


class DocumentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: Literal["processing", "ready", "failed"]
    chunks: int
    shared: bool
    filename: str | None
    content_type: str
    error: str | None = None
    created_at: datetime
    updated_at: datetime
