"""Prompt templates, and the one fit of a question, its context and the conversation into the
model's window (`fit_prompt`). The context is numbered so the model can cite `[n]`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from app.rag.protocols import ChatTurn, ScoredChunk
from app.rag.text import count_tokens

GROUNDED_SYSTEM = (
    "You are a helpful assistant answering questions from a private knowledge base. "
    "Answer only from the numbered context below. Cite the passages you use as [n], "
    "for example [1] or [2][3]. If the context does not contain the answer, say that the "
    "knowledge base has no information on it. Do not invent facts, names or numbers."
)
GENERAL_SYSTEM = (
    "You are a helpful assistant. The private knowledge base has nothing relevant to this "
    "question, so answer from general knowledge, briefly, and say if you are unsure."
)
NO_RELEVANT_DOCUMENTS = (
    "I couldn't find anything about this in the knowledge base, so I can't answer it. "
    "Try rephrasing the question, or add a document that covers it."
)
GENERAL_KNOWLEDGE_NOTICE = "(Not from the knowledge base: general knowledge.) "


def render_context(chunks: Sequence[ScoredChunk]) -> str:
    return "\n\n".join(
        f"[{n}] {chunk.title}\n{chunk.text.strip()}" for n, chunk in enumerate(chunks, start=1)
    )


def grounded_messages(
    question: str, chunks: Sequence[ScoredChunk], memory: Sequence[ChatTurn] = ()
) -> list[ChatTurn]:
    """System prompt, the conversation so far, then the context with the question."""
    user = f"Context:\n{render_context(chunks)}\n\nQuestion: {question}"
    return [ChatTurn("system", GROUNDED_SYSTEM), *memory, ChatTurn("user", user)]


def general_messages(question: str, memory: Sequence[ChatTurn] = ()) -> list[ChatTurn]:
    return [ChatTurn("system", GENERAL_SYSTEM), *memory, ChatTurn("user", question)]


def turn_cost(turn: ChatTurn) -> int:
    """Estimated prompt tokens of one message, with its role overhead."""
    return count_tokens(turn.content) + 4


def fit_context(
    question: str, chunks: Sequence[ScoredChunk], *, budget_tokens: int
) -> list[ScoredChunk]:
    """Keep the best chunks whose prompt fits `budget_tokens`, dropping the weakest first."""
    kept = sorted(chunks, key=lambda c: c.score, reverse=True)
    while kept:
        prompt = grounded_messages(question, kept)
        # The estimate never exceeds the character count: skip counting when that fits.
        if sum(len(turn.content) + 4 for turn in prompt) <= budget_tokens:
            break
        if sum(count_tokens(turn.content) + 4 for turn in prompt) <= budget_tokens:
            break
        kept.pop()
    return kept


def fit_memory(memory: Sequence[ChatTurn], *, budget_tokens: int) -> list[ChatTurn]:
    """The newest turns whose total fits `budget_tokens`, in their original order.

    Turns are taken newest first and the first that does not fit ends the memory: a gap in the
    middle of a conversation would misrepresent it.
    """
    kept: list[ChatTurn] = []
    used = 0
    for turn in reversed(memory):
        cost = turn_cost(turn)
        if used + cost > budget_tokens:
            break
        kept.append(turn)
        used += cost
    kept.reverse()
    return kept


@dataclass(frozen=True, slots=True)
class FittedPrompt:
    """The messages for the generator; `contexts[i]` is cited as `[i + 1]` (empty when not
    `grounded`: the general-knowledge prompt)."""

    messages: list[ChatTurn]
    contexts: list[ScoredChunk]
    grounded: bool


def fit_prompt(
    question: str,
    relevant: Sequence[ScoredChunk],
    memory: Sequence[ChatTurn],
    *,
    budget_tokens: int,
    memory_tokens: int,
    general_fallback: bool,
) -> FittedPrompt | None:
    """Fit one prompt into `budget_tokens`: the question and the context first (the weakest
    chunks dropped until they fit), then the conversation's newest turns (`memory`, already
    cleaned) in what is left, up to `memory_tokens`. With no chunk that fits, the
    general-knowledge prompt if `general_fallback`, else None (the caller refuses)."""
    contexts = fit_context(question, relevant, budget_tokens=budget_tokens) if relevant else []
    if contexts:
        base, grounded = grounded_messages(question, contexts), True
    elif general_fallback:
        base, grounded = general_messages(question), False
    else:
        return None
    history: list[ChatTurn] = []
    if memory:
        left = budget_tokens - sum(turn_cost(turn) for turn in base)
        history = fit_memory(memory, budget_tokens=max(0, min(memory_tokens, left)))
    # The memory goes between the system prompt and the question, as `*_messages` place it.
    return FittedPrompt([base[0], *history, *base[1:]], contexts, grounded)
