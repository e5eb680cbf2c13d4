"""The deadline of the work in progress (a chat turn), shared by every upstream call it makes.

A turn sets one budget with `within(seconds)`; the retry policies of the backends ask
`remaining()` and stop retrying when it is spent, so two calls in one turn (condensing a
follow-up, then answering) never retry for a full deadline each. A nested `within` narrows the
budget (the condensing call's share) and never extends it. The deadline travels in a context
variable, so it crosses the Embedder and Generator Protocols without changing them; work
consumed later, in another task (a streamed answer), takes the `Deadline` object along and
re-applies it with `applied`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Deadline:
    """A point in `time.monotonic()` time."""

    expires_at: float

    def remaining(self) -> float:
        """Seconds left; zero or negative once the deadline has passed."""
        return self.expires_at - time.monotonic()


_current: ContextVar[Deadline | None] = ContextVar("deadline", default=None)


def current() -> Deadline | None:
    return _current.get()


def remaining() -> float | None:
    """Seconds left of the current deadline, or None when no deadline applies."""
    deadline = _current.get()
    return None if deadline is None else deadline.remaining()


@contextmanager
def applied(deadline: Deadline | None) -> Iterator[Deadline | None]:
    """Make `deadline` the current one for the block (None: no deadline)."""
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


@contextmanager
def within(seconds: float) -> Iterator[Deadline]:
    """A deadline `seconds` from now for the block, or the current one if that is sooner."""
    new = Deadline(time.monotonic() + seconds)
    outer = _current.get()
    chosen = new if outer is None or new.expires_at < outer.expires_at else outer
    with applied(chosen):
        yield chosen


async def bounded(items: AsyncIterator[T], deadline: Deadline | None) -> AsyncIterator[T]:
    """`items`, each step run under `deadline` (for an iterator consumed outside the block
    that set it, e.g. a streamed answer read by the response task)."""
    iterator = aiter(items)
    try:
        while True:
            with applied(deadline):
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()
