"""`POST /v1/chat/completions` on top of ChatService: the last user message is the question,
the messages before it are the conversation memory, and the turn is stored in the caller's
history like any other chat (in a conversation per distinct `user` value, or per API key)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import sqlalchemy.exc

from app.auth.principal import Principal
from app.chat.schemas import SourceRead
from app.chat.service import CallerRevoked, ChatService, StillValid, StreamedReply
from app.collections.access import CollectionAccess
from app.core.errors import AppError, UpstreamError
from app.openai_compat.errors import InvalidRequest, ModelNotFound, stream_error_event
from app.openai_compat.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageIn,
    Choice,
    Usage,
)
from app.rag.pipeline import RagPipeline
from app.rag.protocols import ChatTurn, Source, TokenUsage, Visibility
from app.rag.text import count_tokens

logger = logging.getLogger(__name__)

RAG_MODEL = "rag"
# One model per collection the caller belongs to: `rag:<collection id>` answers from that
# collection alone, so a chat front end's model picker picks the knowledge base.
COLLECTION_MODEL_PREFIX = "rag:"
_MEMORY_ROLES = {"user": "user", "assistant": "assistant"}
# Conversation.client_ref holds 200 characters; longer `user` values are hashed.
_MAX_REF_CHARS = 200


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    question: str
    memory: list[ChatTurn]
    prompt_tokens: int
    visibility: Visibility


def collection_model(collection_id: int) -> str:
    return f"{COLLECTION_MODEL_PREFIX}{collection_id}"


def model_visibility(model: str, access: CollectionAccess) -> Visibility:
    """What a model answers from: `rag` everything the caller can see, `rag:<id>` one of
    their collections alone; `ModelNotFound` for anything else (a collection they do not
    belong to included, so the ids of others' collections cannot be probed)."""
    if model == RAG_MODEL:
        return access.visibility()
    suffix = model.removeprefix(COLLECTION_MODEL_PREFIX)
    if suffix != model and suffix.isascii() and suffix.isdigit():
        collection_id = int(suffix)
        if collection_id in access.roles:
            return access.visibility([collection_id])
    raise ModelNotFound(model)


def _text_of(message: ChatMessageIn, index: int) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    texts: list[str] = []
    for j, part in enumerate(message.content):
        if part.type != "text" or part.text is None:
            raise InvalidRequest(
                "Only text content parts are supported.",
                param=f"messages[{index}].content[{j}]",
            )
        texts.append(part.text)
    return "\n".join(texts)


def conversation_ref(caller: Principal, user_field: str | None) -> str:
    """The conversation a /v1 turn is stored in: one per `user` value, else one per API key
    (or one for JWT callers)."""
    if user_field:
        ref = f"openai:user:{user_field}"
        if len(ref) <= _MAX_REF_CHARS:
            return ref
        return "openai:user-sha256:" + hashlib.sha256(user_field.encode()).hexdigest()
    if caller.key_id is not None:
        return f"openai:key:{caller.key_id}"
    return "openai:token"


def _sources(sources: Sequence[Source]) -> list[SourceRead]:
    return [SourceRead.model_validate(dataclasses.asdict(s)) for s in sources]


class CompletionService:
    """Renders ChatService turns as OpenAI chat completions, plain or streamed."""

    def __init__(
        self,
        chat: ChatService,
        *,
        max_messages: int,
        max_request_chars: int,
        max_message_chars: int,
        access: CollectionAccess,
    ) -> None:
        self.chat = chat
        self.access = access
        self.max_messages = max_messages
        self.max_request_chars = max_request_chars
        self.max_message_chars = max_message_chars

    def parse(self, request: ChatCompletionRequest) -> ParsedRequest:
        visibility = model_visibility(request.model, self.access)
        messages = request.messages
        if len(messages) > self.max_messages:
            raise InvalidRequest(
                f"At most {self.max_messages} messages per request.", param="messages"
            )
        texts = [_text_of(m, i) for i, m in enumerate(messages)]
        if sum(len(t) for t in texts) > self.max_request_chars:
            raise InvalidRequest(
                f"The messages exceed {self.max_request_chars} characters in total.",
                param="messages",
            )
        last_user = next(
            (i for i in reversed(range(len(messages))) if messages[i].role == "user"), None
        )
        if last_user is None:
            raise InvalidRequest("The messages contain no user message.", param="messages")
        question = texts[last_user].strip()
        param = f"messages[{last_user}].content"
        if not question:
            raise InvalidRequest("The last user message is empty.", param=param)
        if len(question) > self.max_message_chars:
            raise InvalidRequest(
                f"The last user message is longer than {self.max_message_chars} characters.",
                param=param,
            )
        # Our own system prompt grounds the answer; clients' system and tool messages are not
        # conversation turns. Messages after the last user message are not memory either.
        memory = [
            ChatTurn(_MEMORY_ROLES[m.role], texts[i].strip())
            for i, m in enumerate(messages[:last_user])
            if m.role in _MEMORY_ROLES and texts[i].strip()
        ]
        return ParsedRequest(question, memory, sum(count_tokens(t) for t in texts), visibility)

    def _chat_for(self, request: ChatCompletionRequest) -> ChatService:
        """The chat service, with the request's temperature and token limit when it sets them
        (the limit never above the configured LLM_MAX_TOKENS)."""
        max_tokens = request.max_completion_tokens or request.max_tokens
        if request.temperature is None and max_tokens is None:
            return self.chat
        base = self.chat.pipeline.config
        config = dataclasses.replace(
            base,
            temperature=base.temperature if request.temperature is None else request.temperature,
            max_tokens=base.max_tokens if max_tokens is None else min(max_tokens, base.max_tokens),
        )
        # Shallow copies: same backends, store and sessions; only the sampling settings differ.
        pipeline: RagPipeline = copy.copy(self.chat.pipeline)
        pipeline.config = config
        chat = copy.copy(self.chat)
        chat.pipeline = pipeline
        return chat

    async def complete(self, caller: Principal, request: ChatCompletionRequest) -> ChatCompletion:
        parsed = self.parse(request)
        result = await self._chat_for(request).reply(
            caller.user,
            parsed.question,
            conversation_ref=conversation_ref(caller, request.user),
            memory=parsed.memory,
            visibility=parsed.visibility,
            usage_path="v1",
        )
        text = result.answer.text
        return ChatCompletion(
            id=_completion_id(),
            created=int(time.time()),
            model=request.model,
            choices=[Choice(message=AssistantMessage(content=text))],
            usage=usage_of(result.usage, parsed.prompt_tokens, text),
            sources=_sources(result.answer.sources),
            conversation_id=result.conversation_id,
        )

    async def stream(
        self,
        caller: Principal,
        request: ChatCompletionRequest,
        *,
        still_valid: StillValid | None = None,
        check_seconds: float = 2.0,
    ) -> AsyncIterator[str]:
        """Retrieve now (so errors are a plain JSON error response), then the SSE body.
        `still_valid` re-checks the caller while the answer streams (see `_ChunkStream`)."""
        parsed = self.parse(request)
        chat = self._chat_for(request)
        reply = await chat.stream_reply(
            caller.user,
            parsed.question,
            conversation_ref=conversation_ref(caller, request.user),
            memory=parsed.memory,
            visibility=parsed.visibility,
            usage_path="v1",
        )
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return _ChunkStream(
            reply,
            model=request.model,
            prompt_tokens=parsed.prompt_tokens,
            include_usage=include_usage,
            keepalive_seconds=chat.keepalive_seconds,
            still_valid=still_valid,
            check_seconds=check_seconds,
        ).events()


def usage_of(recorded: TokenUsage | None, prompt_tokens: int, text: str) -> Usage:
    """The `usage` of a response: the turn's tokens as recorded for the user's budget (the
    LLM's count, or our estimate), else an estimate from the messages and the answer."""
    if recorded is not None:
        return Usage(
            prompt_tokens=recorded.prompt_tokens,
            completion_tokens=recorded.completion_tokens,
            total_tokens=recorded.total_tokens,
        )
    completion_tokens = count_tokens(text)
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def _completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


KEEPALIVE = ": keepalive\n\n"
DONE = "data: [DONE]\n\n"


class _ChunkStream:
    """`chat.completion.chunk` events: the role (with our `sources` and `conversation_id`),
    the content deltas, an empty delta with `finish_reason`, the usage chunk if asked for,
    then `data: [DONE]`. An upstream failure mid-answer is a `data: {"error": ...}` event,
    which the SDKs raise as `APIError`.

    With `still_valid`, the caller is re-checked (by `StreamedReply.paced`, as our SSE stream
    is) between upstream reads (at most every `check_seconds`) and at least every
    `check_seconds` while the upstream is silent: a key revoked or an account deleted
    mid-answer ends the stream with an error event and `[DONE]`, and the upstream generation
    is stopped. A conversation that vanished with its
    owner before the answer could be stored ends the same way, never as an exception."""

    def __init__(
        self,
        reply: StreamedReply,
        *,
        model: str,
        prompt_tokens: int,
        include_usage: bool,
        keepalive_seconds: float,
        still_valid: StillValid | None = None,
        check_seconds: float = 2.0,
    ) -> None:
        self.reply = reply
        self.still_valid = still_valid
        self.check_seconds = check_seconds
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.include_usage = include_usage
        self.keepalive_seconds = keepalive_seconds
        self.id = _completion_id()
        self.created = int(time.time())

    def _event(
        self,
        choices: list[dict[str, object]],
        *,
        usage: Usage | None = None,
        **extensions: object,
    ) -> str:
        body: dict[str, object] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:  # OpenAI then sends `"usage": null` on every chunk but the last
            body["usage"] = usage.model_dump() if usage else None
        body.update(extensions)
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    @staticmethod
    def _choice(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
        return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}

    async def events(self) -> AsyncIterator[str]:
        yield self._event(
            [self._choice({"role": "assistant", "content": ""})],
            sources=[s.model_dump() for s in _sources(self.reply.sources)],
            conversation_id=self.reply.conversation_id,
        )
        ended: AppError | None = None
        try:
            async with contextlib.aclosing(
                self.reply.paced(
                    self.keepalive_seconds,
                    still_valid=self.still_valid,
                    check_seconds=self.check_seconds,
                )
            ) as items:
                async for delta in items:
                    if delta is None:
                        yield KEEPALIVE
                    elif delta:
                        yield self._event([self._choice({"content": delta})])
        except UpstreamError as exc:
            yield stream_error_event(exc)
            return
        except (AppError, sqlalchemy.exc.IntegrityError) as exc:
            # The caller no longer holds (CallerRevoked, from `paced`'s re-check), or storing
            # the partial answer failed: its conversation went with its owner.
            ended = _vanished(exc)
        if ended is None:
            try:
                result = await self.reply.finish()
            except (AppError, sqlalchemy.exc.IntegrityError) as exc:
                ended = _vanished(exc)
        if ended is not None:
            yield stream_error_event(ended)
            yield DONE
            return
        yield self._event([self._choice({}, "stop")])
        if self.include_usage:
            usage = usage_of(result.usage, self.prompt_tokens, result.answer.text)
            yield self._event([], usage=usage)
        yield DONE


def _vanished(exc: Exception) -> AppError:
    if isinstance(exc, AppError):
        return exc
    logger.info("stream: the answer could not be stored, its conversation is gone")
    return CallerRevoked("The conversation no longer exists; the answer was not stored.")
