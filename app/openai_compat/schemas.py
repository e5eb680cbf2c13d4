"""OpenAI's request and response shapes, as far as we serve them. Requests accept unknown
fields (clients send many we do not use); responses add `sources`, which clients ignore."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.chat.schemas import SourceRead
from app.core.validation import StorableStr


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Lenient):
    type: str = Field(max_length=50)
    text: StorableStr | None = None


class ChatMessageIn(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    # A string, or parts of which only `{"type": "text", "text": ...}` are supported.
    content: StorableStr | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Lenient):
    include_usage: bool = False


class ChatCompletionRequest(_Lenient):
    model: str = Field(max_length=200, examples=["rag"])
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    # Selects the conversation the turn is stored in (one per distinct value): stored, so NUL
    # is refused as in every stored field (PostgreSQL cannot hold it).
    user: StorableStr | None = Field(default=None, max_length=1_000)
    n: int | None = Field(default=None, ge=1, le=1)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    refusal: None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length"] = "stop"
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: None = None
    # Extensions that OpenAI clients ignore.
    sources: list[SourceRead] = Field(default_factory=list)
    conversation_id: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(_Lenient):
    model: str = Field(max_length=200)
    # Token arrays (lists of ints) are OpenAI's too, but we cannot decode their tokenizer.
    input: StorableStr | list[StorableStr] = Field(examples=["How many days of leave?"])
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int, Field(ge=1)] | None = None
    user: str | None = Field(default=None, max_length=1_000)


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
