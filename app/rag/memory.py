"""Conversation memory: which earlier turns fit the prompt, and how a follow-up is made
standalone before retrieval.

Two condensers share one contract, `queries(question, memory) -> list[str]`, the texts to
retrieve with (their rankings are fused by the pipeline):

* `RuleCondenser` needs no model: a question that leans on what came before (short, or
  built on pronouns such as "those" or "it") is retrieved as itself and together with the
  previous user question.
* `LLMCondenser` asks the configured generator for a standalone rewrite (a short prompt and a
  low `max_tokens`), logs its latency, and falls back to the rules if the call fails or
  outlasts its share of the turn's deadline. A question the rules judge standalone is not
  sent at all: it is retrieved as asked, and the turn saves an LLM round trip.

Memory is always the current conversation's own turns: the caller loads them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from typing import Protocol

from app.core import deadline
from app.core.errors import UpstreamError
from app.rag.prompts import fit_memory as fit_memory  # re-exported: memory's contract
from app.rag.prompts import turn_cost
from app.rag.protocols import ChatTurn, GenerationRequest, Generator, TokenUsage, UsageSink
from app.rag.text import count_tokens

logger = logging.getLogger(__name__)

MEMORY_ROLES = frozenset({"user", "assistant"})
# A question of at most this many words rarely stands alone ("And for contractors?").
SHORT_QUESTION_WORDS = 6
_WORD = re.compile(r"[a-z0-9']+")
_CITATION = re.compile(r"\s*\[\d+\](?:\[\d+\])*")
# Words that point back at something said before.
_ANAPHORA = frozenset(
    {
        *("it", "its", "it's", "they", "them", "their", "theirs", "those", "these", "that"),
        *("this", "there", "then", "he", "him", "his", "she", "her", "such", "same", "one"),
        *("ones", "former", "latter", "also", "too", "else", "other", "others", "either"),
        *("neither", "both"),
    }
)
_CONTINUATIONS = ("and ", "but ", "so ", "also ", "what about", "how about", "why", "then ")

CONDENSE_SYSTEM = (
    "Rewrite the user's last question as one standalone question that can be understood "
    "without the conversation. Keep every name and term it refers to. Reply with the "
    "question only."
)
# The condensing prompt carries only the latest turns, each cut to this many characters.
CONDENSE_TURNS = 4
CONDENSE_TURN_CHARS = 600


def clean_memory(memory: Sequence[ChatTurn]) -> list[ChatTurn]:
    """User and assistant turns only; old `[n]` citations dropped (they numbered another
    context, and a model would copy them)."""
    out: list[ChatTurn] = []
    for turn in memory:
        if turn.role not in MEMORY_ROLES:
            continue
        content = turn.content
        if turn.role == "assistant":
            content = _CITATION.sub("", content)
        content = content.strip()
        if content:
            out.append(ChatTurn(turn.role, content))
    return out


def previous_question(memory: Sequence[ChatTurn]) -> str | None:
    return next((t.content for t in reversed(memory) if t.role == "user"), None)


def leans_on_context(question: str) -> bool:
    """True for a question that probably needs the one before it to be understood."""
    text = question.strip().lower()
    words = _WORD.findall(text)
    if len(words) <= SHORT_QUESTION_WORDS:
        return True
    if text.startswith(_CONTINUATIONS):
        return True
    return any(word in _ANAPHORA for word in words)


class Condenser(Protocol):
    async def queries(
        self, question: str, memory: Sequence[ChatTurn], *, on_usage: UsageSink | None = None
    ) -> list[str]:
        """The texts to retrieve with, most specific first; `[question]` if it stands alone.
        A condenser that calls the LLM reports that call's tokens to `on_usage`."""
        ...


class RuleCondenser:
    """Deterministic, model-free: the follow-up alone, and with the previous user question."""

    async def queries(
        self, question: str, memory: Sequence[ChatTurn], *, on_usage: UsageSink | None = None
    ) -> list[str]:
        previous = previous_question(memory)
        if previous is None or not leans_on_context(question):
            return [question]
        return [f"{previous} {question}", question]


class LLMCondenser:
    """Rewrites a follow-up with the configured generator; the rules are its fallback."""

    def __init__(
        self,
        generator: Generator,
        *,
        max_tokens: int = 64,
        deadline_seconds: float = 3.0,
        only_when_needed: bool = True,
    ) -> None:
        self._generator = generator
        self._max_tokens = max_tokens
        # The call's share of the turn: its retries and its wait for the reply together.
        self._deadline_seconds = deadline_seconds
        self._only_when_needed = only_when_needed
        self._fallback = RuleCondenser()

    @staticmethod
    def messages(question: str, memory: Sequence[ChatTurn]) -> list[ChatTurn]:
        lines = []
        for turn in memory[-CONDENSE_TURNS:]:
            speaker = "User" if turn.role == "user" else "Assistant"
            text = " ".join(turn.content.split())[:CONDENSE_TURN_CHARS]
            lines.append(f"{speaker}: {text}")
        user = (
            "Conversation:\n" + "\n".join(lines) + f"\n\nLast question: {question}\n"
            "Standalone question:"
        )
        return [ChatTurn("system", CONDENSE_SYSTEM), ChatTurn("user", user)]

    async def queries(
        self, question: str, memory: Sequence[ChatTurn], *, on_usage: UsageSink | None = None
    ) -> list[str]:
        if previous_question(memory) is None:
            return [question]
        if self._only_when_needed and not leans_on_context(question):
            return [question]
        request = GenerationRequest(
            question=question,
            contexts=[],
            messages=self.messages(question, memory),
            grounded=False,
            max_tokens=self._max_tokens,
            temperature=0.0,
        )
        reported: list[TokenUsage] = []
        request = dataclasses.replace(request, on_usage=reported.append)
        started = time.perf_counter()
        try:
            with deadline.within(self._deadline_seconds) as share:
                async with asyncio.timeout(max(0.0, share.remaining())):
                    raw = await self._generator.generate(request)
        except (UpstreamError, TimeoutError) as exc:
            logger.warning(
                "condensing the follow-up failed after %.0f ms (%s); using the rules",
                (time.perf_counter() - started) * 1000,
                exc.code if isinstance(exc, UpstreamError) else "out of time",
            )
            return await self._fallback.queries(question, memory)
        logger.info("condensed the follow-up in %.0f ms", (time.perf_counter() - started) * 1000)
        if on_usage is not None:  # the LLM's count, else the documented estimate
            on_usage(
                reported[-1]
                if reported
                else TokenUsage(
                    sum(turn_cost(t) for t in request.messages), count_tokens(raw), estimated=True
                )
            )
        rewritten = _first_line(raw)
        if not rewritten:
            return await self._fallback.queries(question, memory)
        return [rewritten] if rewritten != question else [question]


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        line = line.strip()
        # Some models repeat the label they were given, or quote their answer.
        if line.lower().startswith("standalone question:"):
            line = line.split(":", 1)[1]
        line = line.strip().strip("\"'").strip()
        if line:
            return line[:CONDENSE_TURN_CHARS]
    return ""
