"""A chat turn: store the question in its conversation, answer it from the knowledge base with
the conversation as memory, store the answer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import anyio
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.chat.conversations.models import Conversation
from app.chat.conversations.repository import ConversationRepository
from app.chat.conversations.service import ConversationNotFound, shorten_title
from app.chat.repository import ChatRepository, HistoryExtension, HistoryRow
from app.core.db import utcnow
from app.core.errors import AppError, InvalidInput, NotAuthenticated, UpstreamError, is_outage
from app.rag.pipeline import RagPipeline, StreamedAnswer
from app.rag.protocols import Answer, ChatTurn, Source, TokenUsage, Visibility
from app.usage.meter import TurnMeter, UsageMeter, released_on_error

logger = logging.getLogger(__name__)

KEEPALIVE = ": keepalive\n\n"
_ROLES = {"user": "user", "bot": "assistant"}

# Re-checks, for a stream that outlives its authentication, that the caller still holds (the
# credential, the account, the collections the answer draws on): `app.api` builds it.
StillValid = Callable[[], Awaitable[bool]]


class CallerRevoked(NotAuthenticated):
    code = "credentials_revoked"
    default_detail = "The API key was revoked or the account deleted while the answer streamed."


async def caller_gone(still_valid: StillValid) -> AppError | None:
    """The error ending a stream if its caller no longer holds, else None. A database outage
    fails closed (the answer could not be stored either); other database errors raise."""
    try:
        valid = await still_valid()
    except SQLAlchemyError as exc:
        if not is_outage(exc):
            raise
        logger.warning("stream: the caller could not be re-checked (%s)", type(exc).__name__)
        return CallerRevoked("The credentials could not be re-checked; try again.")
    return None if valid else CallerRevoked()


@dataclass(frozen=True, slots=True)
class TurnResult:
    """One answered turn: the answer, its conversation and the stored bot message."""

    answer: Answer
    conversation_id: int
    message_id: int
    # The turn's tokens as recorded (None when the service meters nothing).
    usage: TokenUsage | None = None


@dataclass(frozen=True, slots=True)
class _Turn:
    """A turn whose question is stored: what the pipeline answers from."""

    text: str
    conversation_id: int
    memory: list[ChatTurn]
    meter: TurnMeter | None


class ChatService:
    """Each database step is its own short transaction: no pooled connection is held while
    the embedder, vector store or LLM works, so concurrency is bounded by them, not the pool.

    A turn goes to `conversation_id` (the user's own, else 404), or to the conversation named
    `conversation_ref` (created on first use), or else continues the user's most recently
    active conversation (created if there is none), so clients that know nothing of
    conversations keep one thread. Write transactions start with a write, so SQLite's
    busy timeout orders them instead of failing a read-then-write upgrade.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        pipeline: RagPipeline,
        *,
        max_message_chars: int,
        title_chars: int = 60,
        memory_messages: int = 20,
        keepalive_seconds: float = 15.0,
        usage: UsageMeter | None = None,
    ) -> None:
        self.sessions = sessions
        # Token usage and the daily budget: started before a turn is stored, admits the LLM
        # call, settled when the turn ends (app.usage.meter).
        self.usage = usage
        self.pipeline = pipeline
        self.max_message_chars = max_message_chars
        self.title_chars = title_chars
        self.memory_messages = memory_messages
        self.keepalive_seconds = keepalive_seconds

    def validate(self, message: str) -> str:
        text = message.strip()
        if not text:
            raise InvalidInput("The message is empty.")
        if len(text) > self.max_message_chars:
            raise InvalidInput(f"The message is longer than {self.max_message_chars} characters.")
        return text

    async def reply(
        self,
        user: User,
        message: str,
        *,
        conversation_id: int | None = None,
        conversation_ref: str | None = None,
        memory: Sequence[ChatTurn] | None = None,
        visibility: Visibility,
        usage_path: str = "chat",
    ) -> TurnResult:
        """Answer `message` in a conversation; `memory`, when given, replaces the stored turns
        as the conversation so far (OpenAI clients send their own history). `usage_path`
        names the API the turn's tokens are recorded under."""
        turn = await self._begin_turn(
            user, message, conversation_id, conversation_ref, memory, usage_path
        )
        async with released_on_error(turn.meter):
            answer = await self.pipeline.answer(
                turn.text, visibility=visibility, memory=turn.memory, meter=turn.meter
            )
        usage = await turn.meter.settle(answer.text) if turn.meter else None
        message_id = await self.store_bot_answer(
            user.id, turn.conversation_id, answer.text, answer.sources
        )
        return TurnResult(answer, turn.conversation_id, message_id, usage)

    async def stream_reply(
        self,
        user: User,
        message: str,
        *,
        conversation_id: int | None = None,
        conversation_ref: str | None = None,
        memory: Sequence[ChatTurn] | None = None,
        visibility: Visibility,
        usage_path: str = "stream",
    ) -> StreamedReply:
        """Store the question and retrieve; the answer is generated as the reply is read."""
        turn = await self._begin_turn(
            user, message, conversation_id, conversation_ref, memory, usage_path
        )
        async with released_on_error(turn.meter):
            streamed = await self.pipeline.stream_answer(
                turn.text, visibility=visibility, memory=turn.memory, meter=turn.meter
            )
        return StreamedReply(self, user.id, turn.conversation_id, streamed, meter=turn.meter)

    async def _begin_turn(
        self,
        user: User,
        message: str,
        conversation_id: int | None,
        conversation_ref: str | None,
        memory: Sequence[ChatTurn] | None,
        usage_path: str,
    ) -> _Turn:
        """The steps every turn takes before it is answered, plainly or streamed: start its
        meter (refused when the day's token budget is spent), validate the question, find or
        create its conversation, load the memory, and store the question first, so it
        survives an upstream failure."""
        meter = await self.usage.start(user, usage_path) if self.usage else None
        user_id = user.id
        text = self.validate(message)
        async with self.sessions() as session:
            conversation = await self._find_conversation(
                ConversationRepository(session), user_id, conversation_id, conversation_ref
            )
            turns: list[ChatTurn] = []
            if conversation is not None and memory is None and self.memory_messages:
                stored = await ChatRepository(session).recent(
                    conversation.id, limit=self.memory_messages
                )
                turns = [ChatTurn(_ROLES[m.role], m.content) for m in stored if m.role in _ROLES]
        if conversation is None:
            conversation_id = await self._create_conversation(user_id, text, conversation_ref)
        else:
            conversation_id = conversation.id
        try:
            await self._store(user_id, conversation_id, "user", text, title=text)
        except IntegrityError as exc:  # deleted since it was found
            raise ConversationNotFound() from exc
        return _Turn(text, conversation_id, list(memory) if memory is not None else turns, meter)

    @staticmethod
    async def _find_conversation(
        conversations: ConversationRepository,
        user_id: int,
        conversation_id: int | None,
        conversation_ref: str | None,
    ) -> Conversation | None:
        if conversation_id is not None:
            found = await conversations.get_owned(user_id, conversation_id)
            if found is None:
                raise ConversationNotFound()
            return found
        if conversation_ref is not None:
            return await conversations.by_client_ref(user_id, conversation_ref)
        return await conversations.most_recent(user_id)

    async def _create_conversation(self, user_id: int, text: str, client_ref: str | None) -> int:
        now = utcnow()
        try:
            async with self.sessions.begin() as session:
                created = await ConversationRepository(session).add(
                    Conversation(
                        owner_id=user_id,
                        title=shorten_title(text, self.title_chars),
                        client_ref=client_ref,
                        created_at=now,
                        updated_at=now,
                    )
                )
                return created.id
        except IntegrityError:
            if client_ref is None:
                raise
        # A concurrent turn created the conversation with this reference first: join it.
        async with self.sessions() as session:
            existing = await ConversationRepository(session).by_client_ref(user_id, client_ref)
        if existing is None:
            raise ConversationNotFound()
        return existing.id

    async def _store(
        self,
        user_id: int,
        conversation_id: int,
        role: str,
        content: str,
        sources: list[dict[str, object]] | None = None,
        *,
        interrupted: bool = False,
        title: str | None = None,
    ) -> int:
        now = utcnow()
        async with self.sessions.begin() as session:
            stored_id = await ChatRepository(session).insert(
                user_id=user_id,
                conversation_id=conversation_id,
                role=role,
                content=content,
                timestamp=now,
                sources=sources,
                interrupted=interrupted,
            )
            await ConversationRepository(session).touch(
                conversation_id,
                now,
                title_if_empty=shorten_title(title, self.title_chars) if title else None,
            )
        return stored_id

    async def store_bot_answer(
        self,
        user_id: int,
        conversation_id: int,
        text: str,
        sources: Sequence[Source],
        *,
        interrupted: bool = False,
    ) -> int:
        try:
            return await self._store(
                user_id,
                conversation_id,
                "bot",
                text,
                [dataclasses.asdict(s) for s in sources],
                interrupted=interrupted,
            )
        except IntegrityError as exc:  # the conversation went with its owner meanwhile
            raise ConversationNotFound() from exc

    async def history(
        self,
        user: User,
        *,
        limit: int,
        before_id: int | None = None,
        conversation_id: int | None = None,
        extend: HistoryExtension | None = None,
    ) -> list[HistoryRow]:
        """Rows of (id, role, content, timestamp, sources JSON, then the columns `extend`
        adds), oldest first."""
        async with self.sessions() as session:
            if conversation_id is not None:
                owned = await ConversationRepository(session).get_owned(user.id, conversation_id)
                if owned is None:
                    raise ConversationNotFound()
            return await ChatRepository(session).latest(
                user.id,
                limit=limit,
                before_id=before_id,
                conversation_id=conversation_id,
                extend=extend,
            )


class StreamedReply:
    """One streamed answer, consumed in one of two ways.

    * `events()`: server-sent events for our API: `sources`, `delta`..., then `done`
      (`{id, response, conversation_id}`) or `error`; an SSE comment (`: keepalive`) whenever
      the upstream has been silent for `keepalive_seconds`.
    * Lower level, for other wire formats (the OpenAI-compatible API): read `sources` and
      `grounded`, iterate `paced(keepalive_seconds)` (text deltas, and None for each silent
      interval; `paced(None)` never yields None), then `await finish()` for the `TurnResult`.
      An `UpstreamError` from `paced` means the answer failed: nothing is stored.

    If iteration stops early (the client disconnected and the task was cancelled, or the
    consumer broke out of the loop), the upstream generation is cancelled at once and the text
    generated so far is stored as the bot message with `interrupted` set; `finish()` then
    returns that message. The bot message is stored once, whichever path gets there first.
    """

    def __init__(
        self,
        service: ChatService,
        user_id: int,
        conversation_id: int,
        streamed: StreamedAnswer,
        *,
        meter: TurnMeter | None = None,
    ) -> None:
        self._service = service
        self._meter = meter
        self._user_id = user_id
        self.conversation_id = conversation_id
        self._streamed = streamed
        self._parts: list[str] = []
        self._result: TurnResult | None = None
        self._failed = False
        self.interrupted = False

    @property
    def sources(self) -> list[Source]:
        return self._streamed.sources

    @property
    def grounded(self) -> bool:
        return self._streamed.grounded

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self._parts).strip()

    async def finish(self, *, interrupted: bool = False) -> TurnResult:
        """Store the answer (once) and return the turn; `interrupted` marks a partial answer."""
        if self._result is None:
            text = self.text
            usage = await self._meter.settle(text) if self._meter else None
            message_id = await self._service.store_bot_answer(
                self._user_id,
                self.conversation_id,
                text,
                self.sources,
                interrupted=interrupted,
            )
            self.interrupted = interrupted
            self._result = TurnResult(
                Answer(text=text, sources=self.sources, grounded=self.grounded),
                self.conversation_id,
                message_id,
                usage,
            )
        return self._result

    async def paced(
        self,
        keepalive_seconds: float | None,
        *,
        still_valid: StillValid | None = None,
        check_seconds: float = 2.0,
    ) -> AsyncGenerator[str | None, None]:
        """The text deltas, with None after each `keepalive_seconds` without one.

        With `still_valid`, the caller is re-checked between upstream reads (at most every
        `check_seconds`) and at least every `check_seconds` while the upstream is silent; once
        it no longer holds, `CallerRevoked` is raised: the upstream generation is stopped and
        the text so far stored as interrupted, as for any early stop. Every stream (our SSE,
        the OpenAI-compatible chunks) re-checks here, so they cannot drift apart."""
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        producer = asyncio.create_task(self._produce(queue))
        complete = False
        # Silent waits are cut at check_seconds so a silent upstream is re-checked too.
        wait = keepalive_seconds
        if still_valid is not None:
            wait = check_seconds if wait is None else min(wait, check_seconds)
        checked_at = time.monotonic()
        silent = 0.0
        try:
            while True:
                timed_out = False
                item: str | BaseException | None = None
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=wait)
                except TimeoutError:
                    timed_out = True
                if still_valid is not None and time.monotonic() - checked_at >= check_seconds:
                    checked_at = time.monotonic()
                    if (gone := await caller_gone(still_valid)) is not None:
                        raise gone  # the finally below stops the upstream
                if timed_out:
                    if keepalive_seconds is not None and wait is not None:
                        silent += wait
                        if silent >= keepalive_seconds:
                            silent = 0.0
                            yield None
                    continue
                if item is None:
                    complete = True
                    return
                if isinstance(item, BaseException):
                    self._failed = True
                    raise item
                silent = 0.0
                self._parts.append(item)
                yield item
        finally:
            if not complete:
                # Shielded: when the client has gone the task is being cancelled, and these
                # awaits must still run to stop the upstream and keep what it wrote.
                with anyio.CancelScope(shield=True):
                    producer.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await producer
                    if self._failed and self._meter is not None:
                        await self._meter.release()
                    elif not self._failed and self._result is None:
                        try:
                            result = await self.finish(interrupted=True)
                        except (ConversationNotFound, IntegrityError):  # owner deleted meanwhile
                            logger.info("stream interrupted: its conversation is gone")
                        else:
                            logger.info(
                                "stream interrupted: stored %d characters as message %d",
                                len(result.answer.text),
                                result.message_id,
                            )

    async def _produce(self, queue: asyncio.Queue[str | BaseException | None]) -> None:
        # One task reads the upstream from start to end: its network reads are where a
        # cancellation lands, and httpcore then closes the connection, stopping generation.
        deltas = self._streamed.deltas
        try:
            async for delta in deltas:
                queue.put_nowait(delta)
        except Exception as exc:  # handed to the consumer, which raises it
            queue.put_nowait(exc)
            return
        finally:
            aclose = getattr(deltas, "aclose", None)
            if aclose is not None:
                await aclose()
        queue.put_nowait(None)

    @staticmethod
    def _event(name: str, data: object) -> str:
        return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def events(
        self,
        keepalive_seconds: float | None = None,
        *,
        still_valid: StillValid | None = None,
        check_seconds: float = 2.0,
    ) -> AsyncIterator[str]:
        """Our SSE body; with `still_valid` the caller is re-checked as it streams (see
        `paced`) and a caller gone mid-answer ends it with an `error` event."""
        keepalive = keepalive_seconds or self._service.keepalive_seconds
        yield self._event("sources", [dataclasses.asdict(s) for s in self.sources])
        try:
            async with contextlib.aclosing(
                self.paced(keepalive, still_valid=still_valid, check_seconds=check_seconds)
            ) as items:
                async for delta in items:
                    if delta is None:
                        yield KEEPALIVE
                    else:
                        yield self._event("delta", {"text": delta})
        except (UpstreamError, CallerRevoked) as exc:
            yield self._event("error", {"error": exc.code, "detail": exc.detail})
            return
        try:
            result = await self.finish()
        except (ConversationNotFound, IntegrityError):  # deleted with its owner meanwhile
            gone = ConversationNotFound()
            yield self._event("error", {"error": gone.code, "detail": gone.detail})
            return
        yield self._event(
            "done",
            {
                "id": result.message_id,
                "response": result.answer.text,
                "conversation_id": result.conversation_id,
            },
        )
