from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.core.db import MAX_ID
from app.core.validation import UtcDatetime, no_nul


class ApiKeyCreate(BaseModel):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        AfterValidator(no_nul),
    ] = Field(examples=["Open WebUI on my laptop"])
    collection_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None,
        min_length=1,
        max_length=1_000,
        description="Limit the key to these collections of yours: it then retrieves from "
        "them alone (not your private documents, not the shared ones).",
    )
    scopes: list[Literal["admin"]] = Field(
        default_factory=list,
        max_length=1,
        description='["admin"]: the key may call /api/admin/. Only an administrator signed in '
        "with a login token may ask for it.",
    )
    # Timezone-aware and in the future; omitted: the key works until revoked.
    expires_at: UtcDatetime | None = None


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="Updated at most once per API_KEY_LAST_USED_INTERVAL_SECONDS."
    )
    expires_at: datetime | None
    scopes: list[str] = Field(default_factory=list)


class ApiKeyScoped(ApiKeyRead):
    collection_ids: list[int] | None = Field(
        default=None, description="The collections the key is limited to; null: unrestricted."
    )


class ApiKeyCreated(ApiKeyScoped):
    key: str = Field(description="The key itself. Shown only in this response; store it now.")
