"""The MCP tools over the knowledge base. Each tool is a thin adapter: it takes the caller from
the scope (`app.mcp.auth`), calls the same domain service as the REST API, and renders the
result as structured content plus readable text. An `AppError` becomes a tool error
(`isError: true`) whose message starts with the REST API's code and status, e.g.
`upstream_timeout (504): ...`; the session stays up."""

# No `from __future__ import annotations`: the SDK evaluates the tools' annotations, which
# name limits from `settings` (closure variables a string annotation could not reach).

import copy
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from app.api.routers.chat import get_chat_service
from app.api.state import State
from app.auth.principal import Principal
from app.collections.access import CollectionAccess, load_access
from app.core.config import Settings
from app.core.db import MAX_ID
from app.core.errors import (
    AppError,
    DatabaseUnavailable,
    InvalidInput,
    NotAuthenticated,
    is_outage,
)
from app.core.requestid import bound_request_id
from app.core.validation import StorableStr
from app.mcp.auth import REQUEST_ID_KEY, principal_of
from app.rag.pipeline import RagPipeline
from app.rag.protocols import ScoredChunk, Source, Visibility

logger = logging.getLogger(__name__)

INSTRUCTIONS = (
    "The caller's knowledge base: their own documents, their collections' and the shared "
    "ones (a collection-scoped key: its collections alone). Use "
    "search_knowledge_base to find passages, read_document to read around a hit, "
    "list_documents to see what is there, and ask_knowledge_base for an answer written from "
    "the documents with [n] citations (stored in the caller's chat history)."
)

DocumentId = Annotated[int, Field(ge=1, le=MAX_ID, description="A document id")]
CollectionId = Annotated[
    int | None,
    Field(
        ge=1,
        le=MAX_ID,
        description="Only this collection's documents (one you are a member of); "
        "by default everything you can see",
    ),
]


class SearchHit(BaseModel):
    document_id: int
    title: str
    chunk_id: str
    score: float = Field(description="Cosine similarity to the query; higher is closer")
    text: str


class SearchResults(BaseModel):
    results: list[SearchHit]


class SourceOut(BaseModel):
    n: int = Field(description="The number the answer cites as [n]")
    document_id: int
    title: str
    chunk_id: str
    score: float
    snippet: str


class AskResult(BaseModel):
    answer: str
    grounded: bool = Field(description="False when no document was relevant")
    sources: list[SourceOut]
    conversation_id: int


class DocumentSummary(BaseModel):
    id: int
    title: str
    status: str = Field(description="processing, ready, failed or deleting")
    chunks: int
    shared: bool
    collection_id: int | None
    created_at: datetime


class DocumentList(BaseModel):
    documents: list[DocumentSummary]


class DocumentWindow(BaseModel):
    document_id: int
    title: str
    offset: int
    text: str
    total_chars: int
    next_offset: int | None = Field(description="Where the next window starts; null at the end")


@dataclass(frozen=True, slots=True)
class _Caller:
    state: State
    principal: Principal

    @property
    def user_id(self) -> int:
        return self.principal.user.id

    async def visibility(self, collection_id: int | None = None) -> Visibility:
        """What the caller may see, as for the REST API: everything, or one of their
        collections (`collection_not_found` otherwise); a collection-scoped key sees its
        collections alone."""
        access: CollectionAccess = await load_access(self.state["sessions"], self.principal)
        return access.visibility(None if collection_id is None else [collection_id])

    async def count_turn(self) -> None:
        """One hit on the per-user chat limit, the bucket /api/chat/ and /v1 share."""
        settings = self.state["settings"]
        await self.state["ratelimiter"].hit(
            "chat", settings.rate_limit_chat_per_minute, f"user:{self.user_id}"
        )


def _message(exc: AppError) -> str:
    text = f"{exc.code} ({exc.status_code}): {exc.detail}"
    retry_after = (exc.headers or {}).get("Retry-After")
    return f"{text} Retry after {retry_after} s." if retry_after else text


@asynccontextmanager
async def _call(ctx: Context, tool: str) -> AsyncIterator[_Caller]:
    """The caller of a tool call, with our errors turned into tool errors."""
    request = ctx.request_context.request
    if request is None:  # not over HTTP: no credential was resolved
        raise ToolError(_message(NotAuthenticated()))
    scope: dict[str, Any] = request.scope
    with bound_request_id(scope.get(REQUEST_ID_KEY)):
        caller = _Caller(cast(State, scope["state"]), principal_of(scope))
        try:
            yield caller
        except AppError as exc:
            logger.info("mcp %s by user %d: %s", tool, caller.user_id, exc.code)
            raise ToolError(_message(exc)) from exc
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise  # our bug: the SDK logs it and answers "Error executing tool"
            logger.warning("mcp %s: database unavailable: %s", tool, type(exc).__name__)
            raise ToolError(_message(DatabaseUnavailable())) from exc


def _result(text: str, structured: BaseModel) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=structured.model_dump(mode="json"),
    )


def conversation_ref(caller: Principal) -> str:
    """The conversation `ask_knowledge_base` uses without `conversation_id`: one per API key,
    one per user for access tokens; never the user's latest chat, nor a /v1 conversation."""
    return f"mcp:key:{caller.key_id}" if caller.key_id is not None else "mcp:token"


def _hits_text(hits: Sequence[SearchHit]) -> str:
    if not hits:
        return "No passage of the knowledge base matches the query."
    return "\n\n".join(
        f"{i}. {h.title} (document {h.document_id}, chunk {h.chunk_id}, score {h.score:.3f})\n"
        f"{h.text}"
        for i, h in enumerate(hits, start=1)
    )


def _sources(sources: Sequence[Source]) -> list[SourceOut]:
    return [
        SourceOut(n=i, **dataclasses.asdict(source)) for i, source in enumerate(sources, start=1)
    ]


def _answer_text(result: AskResult) -> str:
    lines = [result.answer]
    if result.sources:
        lines += ["", "Sources:"]
        lines += [
            f"[{s.n}] {s.title} (document {s.document_id}, chunk {s.chunk_id})"
            for s in result.sources
        ]
    lines += ["", f"(conversation {result.conversation_id})"]
    return "\n".join(lines)


def build_server(settings: Settings) -> MCPServer:
    """The MCP server and its four tools; its limits come from `settings`."""
    server: MCPServer = MCPServer(
        name="rag-chatbot",
        title="Knowledge base",
        instructions=INSTRUCTIONS,
        version="0.1.0",
    )
    max_top_k = settings.mcp_search_max_top_k
    max_read = settings.mcp_read_max_chars

    @server.tool(
        title="Search the knowledge base",
        description=(
            "Find the passages of the caller's knowledge base (their documents, their "
            "collections' and the shared ones; or one collection's with collection_id) most "
            "relevant to a query, best first. Returns each passage's text with its "
            "document_id, title, chunk_id and score. Use it to look facts up; follow up with "
            "read_document to read the text around a passage."
        ),
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def search_knowledge_base(
        query: Annotated[
            StorableStr, Field(min_length=1, description="What to look for, in plain words")
        ],
        ctx: Context,
        top_k: Annotated[
            int, Field(ge=1, le=max_top_k, description=f"How many passages, 1 to {max_top_k}")
        ] = 5,
        collection_id: CollectionId = None,
    ) -> Annotated[CallToolResult, SearchResults]:
        async with _call(ctx, "search_knowledge_base") as caller:
            if not query.strip():
                raise InvalidInput("The query is empty.")
            visibility = await caller.visibility(collection_id)
            await caller.count_turn()
            chunks = await _retrieve(caller.state["pipeline"], query, top_k, visibility)
        hits = [
            SearchHit(
                document_id=c.document_id,
                title=c.title,
                chunk_id=c.id,
                score=round(float(c.score), 4),
                text=c.text,
            )
            for c in chunks
        ]
        return _result(_hits_text(hits), SearchResults(results=hits))

    @server.tool(
        title="Ask the knowledge base",
        description=(
            "Get an answer written from the caller's documents, citing the passages it uses as "
            "[n] (listed in sources). The question and answer are stored as a turn in the "
            "caller's chat history; earlier turns of the same conversation are its memory. "
            "Without conversation_id, turns go to one conversation kept for this credential."
        ),
        annotations=ToolAnnotations(readOnlyHint=False, openWorldHint=False),
    )
    async def ask_knowledge_base(
        question: Annotated[
            StorableStr,
            Field(
                min_length=1,
                max_length=settings.chat_max_message_chars,
                description="The question, in plain words",
            ),
        ],
        ctx: Context,
        conversation_id: Annotated[
            int | None,
            Field(
                ge=1,
                le=MAX_ID,
                description="One of your conversations to continue (from an earlier answer)",
            ),
        ] = None,
        collection_id: CollectionId = None,
    ) -> Annotated[CallToolResult, AskResult]:
        async with _call(ctx, "ask_knowledge_base") as caller:
            chat = await get_chat_service(caller.state)
            chat.validate(question)  # an empty question is refused before it is counted
            visibility = await caller.visibility(collection_id)
            await caller.count_turn()
            turn = await chat.reply(
                caller.principal.user,
                question,
                conversation_id=conversation_id,
                conversation_ref=None
                if conversation_id is not None
                else conversation_ref(caller.principal),
                visibility=visibility,
                usage_path="mcp",
            )
        result = AskResult(
            answer=turn.answer.text,
            grounded=turn.answer.grounded,
            sources=_sources(turn.answer.sources),
            conversation_id=turn.conversation_id,
        )
        return _result(_answer_text(result), result)

    @server.tool(
        title="List documents",
        description=(
            "List the documents the caller can search (their own, their collections' and the "
            "shared ones; or one collection's with collection_id), with id, title, status (only "
            "`ready` documents are searchable), chunks, collection and creation time."
        ),
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def list_documents(
        ctx: Context, collection_id: CollectionId = None
    ) -> Annotated[CallToolResult, DocumentList]:
        async with _call(ctx, "list_documents") as caller:
            visibility = await caller.visibility(collection_id)
            documents = await caller.state["documents"].visible_to(visibility)
        listed = DocumentList(
            documents=[
                DocumentSummary(
                    id=d.id,
                    title=d.title,
                    status=d.status,
                    chunks=d.chunks,
                    shared=d.shared,
                    collection_id=d.collection_id,
                    created_at=d.created_at,
                )
                for d in documents
            ]
        )
        text = "\n".join(
            f"{d.id}: {d.title} ({d.status}, {d.chunks} chunks, created {d.created_at:%Y-%m-%d})"
            for d in listed.documents
        )
        return _result(text or "No documents.", listed)

    @server.tool(
        title="Read a document",
        description=(
            "Read a window of one document's text: max_chars characters from offset. Use the "
            "document_id of a search hit; next_offset continues where the window ends."
        ),
        annotations=ToolAnnotations(readOnlyHint=True, openWorldHint=False),
    )
    async def read_document(
        document_id: DocumentId,
        ctx: Context,
        offset: Annotated[int, Field(ge=0, description="First character to return")] = 0,
        max_chars: Annotated[
            int, Field(ge=1, le=max_read, description=f"Characters to return, 1 to {max_read}")
        ] = min(8_000, max_read),
    ) -> Annotated[CallToolResult, DocumentWindow]:
        async with _call(ctx, "read_document") as caller:
            visibility = await caller.visibility()
            document = await caller.state["documents"].get_visible(document_id, visibility)
            total = len(document.content)
            if offset > total:
                raise InvalidInput(f"offset is past the end of the document ({total} characters).")
        end = min(total, offset + max_chars)
        window = DocumentWindow(
            document_id=document.id,
            title=document.title,
            offset=offset,
            text=document.content[offset:end],
            total_chars=total,
            next_offset=end if end < total else None,
        )
        more = f"next_offset {end}" if window.next_offset is not None else "end of document"
        header = f"{document.title} (document {document.id}), characters {offset}-{end} of {total}"
        return _result(f"{header}, {more}:\n\n{window.text}", window)

    return server


async def _retrieve(
    pipeline: RagPipeline, query: str, top_k: int, visibility: Visibility
) -> list[ScoredChunk]:
    """The pipeline's own retrieval (visibility, hybrid search, score threshold) with the
    caller's `top_k`: a shallow copy with that setting, as /v1 does for sampling settings."""
    if top_k != pipeline.config.top_k:
        pipeline = copy.copy(pipeline)
        pipeline.config = dataclasses.replace(pipeline.config, top_k=top_k)
    return await pipeline.retrieve(query, visibility=visibility)
