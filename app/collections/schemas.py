from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from app.auth.schemas import Email
from app.collections.models import CollectionRole
from app.core.validation import no_nul

# Constraints before the NUL check: after a validator, pydantic no longer applies them.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(no_nul),
]
Description = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=1000), AfterValidator(no_nul)
]


class CollectionCreate(BaseModel):
    name: Name = Field(examples=["Engineering runbooks"])
    description: Description | None = None


class CollectionUpdate(BaseModel):
    name: Name | None = None
    description: Description | None = None


class CollectionRead(BaseModel):
    id: int
    name: str
    description: str | None
    role: CollectionRole = Field(description="Your role in it.")
    created_at: datetime
    documents: int = Field(description="How many documents it holds.")
    members: int = Field(description="How many members it has.")


class MemberCreate(BaseModel):
    email: Email
    role: CollectionRole = CollectionRole.VIEWER


class MemberUpdate(BaseModel):
    role: CollectionRole


class MemberRead(BaseModel):
    user_id: int
    email: str
    username: str
    role: CollectionRole
    created_at: datetime
