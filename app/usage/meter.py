"""The daily token budget and the recording of every answered turn's tokens.

A turn is metered in three steps: `UsageMeter.start` refuses it at once when the user's budget
for the UTC day is spent (before anything is stored); `TurnMeter.admit`, just before the LLM
call, reserves the call's prompt tokens plus its `max_tokens` (refused unless the day's total
of finished turns and reservations is below the budget); `TurnMeter.settle`, when the turn
ends, replaces the reservation with the real count, or `release` drops it when the LLM failed.
The decision and the reservation are one transaction serialised per user (see
`UsageRepository.lock_user`), so however many turns run at once the day's total exceeds the
budget by at most one turn's real usage, and by none when the LLM's counts match the
reservations.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import ClassVar

import anyio
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.core import metrics
from app.core.db import utcnow
from app.core.errors import AppError, NotAuthenticated
from app.rag.prompts import turn_cost
from app.rag.protocols import GenerationRequest, TokenUsage
from app.rag.text import count_tokens
from app.usage.models import TokenReservation
from app.usage.models import TokenUsage as TokenUsageRecord
from app.usage.repository import UsageRepository

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
# A turn refused only because other turns of the user are in flight may fit once they end.
IN_FLIGHT_RETRY_SECONDS = 5


class TokenBudgetExceeded(AppError):
    status_code = 429
    code = "token_budget_exceeded"
    default_detail = "Your daily token budget is spent; it renews at 00:00 UTC."

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after
        metrics.TOKEN_BUDGET_REFUSALS.inc()


class AccountGone(NotAuthenticated):
    """The turn's user was deleted after the request was authenticated."""

    default_detail = "The account no longer exists."


def seconds_until_next_day(now: datetime) -> int:
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return max(1, math.ceil((tomorrow - now).total_seconds()))


def estimate_prompt_tokens(request: GenerationRequest) -> int:
    """Our estimate of a request's prompt: `count_tokens` per message plus 4 for its role
    (the estimate the prompt is fitted with)."""
    return sum(turn_cost(turn) for turn in request.messages)


class UsageMeter:
    """Builds one `TurnMeter` per turn; `clock` is the seam tests move to the next UTC day."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        default_budget: int,
        reservation_seconds: float,
        clock: Clock = utcnow,
    ) -> None:
        self.sessions = sessions
        self.default_budget = default_budget
        self.reservation_seconds = reservation_seconds
        self.clock = clock

    def budget_of(self, user: User) -> int:
        """The user's daily budget; 0 means none."""
        own = user.daily_token_budget
        return self.default_budget if own is None else own

    async def start(self, user: User, path: str) -> TurnMeter:
        """The meter of a new turn; `TokenBudgetExceeded` when the day's budget is spent."""
        budget = self.budget_of(user)
        if budget:
            now = self.clock()
            async with self.sessions() as session:
                spent = await UsageRepository(session).spent(user.id, now.date())
            if spent >= budget:
                raise TokenBudgetExceeded(retry_after=seconds_until_next_day(now))
        return TurnMeter(self, user.id, budget, path)

    async def _reserve(self, user_id: int, budget: int, tokens: int) -> tuple[int, date]:
        now = self.clock()
        day = now.date()
        async with self.sessions.begin() as session:
            usage = UsageRepository(session)
            if not await usage.lock_user(user_id, now):
                raise AccountGone()  # deleted mid-turn: no LLM call for it
            spent = await usage.spent(user_id, day)
            held = await usage.reserved(user_id, day, now)
            if spent + held >= budget:
                if spent >= budget:
                    raise TokenBudgetExceeded(retry_after=seconds_until_next_day(now))
                raise TokenBudgetExceeded(
                    "Your other answers in progress hold the rest of today's token budget.",
                    retry_after=IN_FLIGHT_RETRY_SECONDS,
                )
            reservation_id = await usage.add_reservation(
                TokenReservation(
                    user_id=user_id,
                    day=day,
                    tokens=tokens,
                    expires_at=now + timedelta(seconds=self.reservation_seconds),
                )
            )
        return reservation_id, day

    async def _settle(
        self, user_id: int, reservation_id: int | None, day: date, path: str, usage: TokenUsage
    ) -> bool:
        """Record a turn's usage; False (nothing recorded) when its user was deleted during
        the turn: their usage and reservations went with them, so there is nothing to keep."""
        try:
            async with self.sessions.begin() as session:
                repository = UsageRepository(session)
                await repository.add_usage(
                    TokenUsageRecord(
                        user_id=user_id,
                        day=day,
                        created_at=self.clock(),
                        path=path,
                        prompt_tokens=usage.prompt_tokens,
                        completion_tokens=usage.completion_tokens,
                        estimated=usage.estimated,
                    )
                )
                if reservation_id is not None:
                    await repository.delete_reservation(reservation_id)
        except IntegrityError:
            # The only foreign key is the user's: tell a vanished user from anything else.
            async with self.sessions() as session:
                exists = await session.scalar(select(User.id).where(User.id == user_id))
            if exists is not None:
                raise
            logger.info("usage: the turn's user was deleted meanwhile; nothing recorded")
            return False
        return True

    async def _release(self, reservation_id: int) -> None:
        async with self.sessions.begin() as session:
            await UsageRepository(session).delete_reservation(reservation_id)


class TurnMeter:
    """The meter of one turn (`app.rag.protocols.TokenMeter`): admits its LLM call, takes the
    LLM's reported usage, and settles once."""

    paths: ClassVar[frozenset[str]] = frozenset({"chat", "stream", "v1", "mcp"})

    def __init__(self, meter: UsageMeter, user_id: int, budget: int, path: str) -> None:
        if path not in self.paths:
            raise ValueError(f"unknown usage path {path!r}")
        self._meter = meter
        self.user_id = user_id
        self.budget = budget
        self.path = path
        self._admitted = False
        self._prompt_estimate = 0
        self._reservation: tuple[int, date] | None = None
        self._reported: TokenUsage | None = None
        self._earlier: list[TokenUsage] = []
        self._done = False
        self.usage: TokenUsage | None = None

    async def admit(self, request: GenerationRequest) -> None:
        if self._admitted:
            raise RuntimeError("a turn meter admits one LLM call")
        self._prompt_estimate = estimate_prompt_tokens(request)
        if self.budget:
            tokens = self._prompt_estimate + (request.max_tokens or 0)
            self._reservation = await self._meter._reserve(self.user_id, self.budget, tokens)
        self._admitted = True

    def report(self, usage: TokenUsage) -> None:
        self._reported = usage

    def add(self, usage: TokenUsage) -> None:
        self._earlier.append(usage)

    async def settle(self, completion: str) -> TokenUsage:
        """Record the turn's tokens (the LLM's count, else our estimate of the prompt and of
        `completion`, the text it produced) in place of its reservation; idempotent. A user
        deleted during the turn is not an error: nothing is recorded, the usage returned."""
        if self._done:
            assert self.usage is not None
            return self.usage
        self._done = True
        if not self._admitted:  # answered without an LLM call (nothing relevant)
            usage = TokenUsage(0, 0)
        elif self._reported is not None:
            usage = self._reported
        else:
            usage = TokenUsage(self._prompt_estimate, count_tokens(completion), estimated=True)
        for earlier in self._earlier:  # condensing the follow-up
            usage = TokenUsage(
                usage.prompt_tokens + earlier.prompt_tokens,
                usage.completion_tokens + earlier.completion_tokens,
                usage.estimated or earlier.estimated,
            )
        reservation_id, day = self._reservation or (None, self._meter.clock().date())
        await self._meter._settle(self.user_id, reservation_id, day, self.path, usage)
        source = "estimated" if usage.estimated else "reported"
        metrics.LLM_TOKENS.labels(kind="prompt", source=source).inc(usage.prompt_tokens)
        metrics.LLM_TOKENS.labels(kind="completion", source=source).inc(usage.completion_tokens)
        self.usage = usage
        return usage

    async def release(self) -> None:
        """The LLM call failed: drop the reservation, record nothing; idempotent."""
        if self._done:
            return
        self._done = True
        if self._reservation is not None:
            await self._meter._release(self._reservation[0])


@asynccontextmanager
async def released_on_error(meter: TurnMeter | None) -> AsyncIterator[None]:
    """Around a turn's LLM call: if it fails (or is cancelled), the reservation is dropped,
    shielded so that a cancelled request still gets there."""
    try:
        yield
    except BaseException:
        if meter is not None:
            with anyio.CancelScope(shield=True):
                await meter.release()
        raise
