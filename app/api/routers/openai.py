"""The OpenAI-compatible API: `GET /v1/models`, `POST /v1/chat/completions`,
`POST /v1/embeddings`. Errors use OpenAI's shape (app/openai_compat/errors.py)."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import StreamingResponse

from app.api.access import CurrentAccess, still_reaches
from app.api.deps import StateDep
from app.api.principal import CurrentPrincipal
from app.api.ratelimits import ChatRateLimit, EmbeddingsRateLimit
from app.api.routers.chat import ChatServiceDep
from app.collections.access import CollectionAccess
from app.openai_compat.completions import (
    RAG_MODEL,
    CompletionService,
    collection_model,
    model_visibility,
)
from app.openai_compat.embeddings import EMBEDDING_MODEL, EmbeddingService
from app.openai_compat.errors import ErrorResponse, ModelNotFound
from app.openai_compat.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelCard,
    ModelList,
)

# A fixed date: the models are part of this service, not versions that come and go.
MODELS_CREATED = 1_764_547_200  # 2025-12-01T00:00:00Z
OWNER = "ragchat"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorResponse, "description": ""} for status in statuses}


router = APIRouter(prefix="/v1", tags=["openai-compatible"])
# Bodies that OPENAI_MAX_BODY_BYTES bounds instead of MAX_JSON_BODY_BYTES.
OPENAI_BODY_PATHS = ("/v1/chat/completions", "/v1/embeddings")


def _cards(access: CollectionAccess) -> list[ModelCard]:
    names = [RAG_MODEL, *(collection_model(c) for c in sorted(access.roles)), EMBEDDING_MODEL]
    return [ModelCard(id=name, created=MODELS_CREATED, owned_by=OWNER) for name in names]


@router.get("/models", response_model=ModelList, responses=_errors(401))
async def list_models(access: CurrentAccess) -> ModelList:
    """`rag` answers from everything you can see, `rag:<id>` from one of your collections
    alone (one per collection you belong to); `rag-embedding` is the store's embedder."""
    return ModelList(data=_cards(access))


@router.get("/models/{model}", response_model=ModelCard, responses=_errors(401, 404))
async def retrieve_model(
    model: Annotated[str, Path(max_length=200)], access: CurrentAccess
) -> ModelCard:
    for card in _cards(access):
        if card.id == model:
            return card
    raise ModelNotFound(model, param="model")


def get_embedding_service(state: StateDep) -> EmbeddingService:
    settings = state["settings"]
    return EmbeddingService(
        state["embedder"],
        # The configured model's own name works too, as with OpenAI-compatible servers.
        model_aliases=frozenset({settings.embedding_model}),
        batch_size=settings.embedding_batch_size,
        max_inputs=settings.openai_embedding_max_inputs,
        max_input_chars=settings.openai_embedding_max_input_chars,
        max_request_chars=settings.openai_embedding_max_request_chars,
    )


@router.post(
    "/embeddings",
    response_model=EmbeddingList,
    responses=_errors(400, 401, 404, 413, 429, 502, 503, 504),
    dependencies=[EmbeddingsRateLimit],
)
async def create_embeddings(
    body: EmbeddingRequest,
    _: CurrentPrincipal,
    service: Annotated[EmbeddingService, Depends(get_embedding_service)],
) -> EmbeddingList:
    """Embed texts with the configured embedder (L2-normalised, the store's vector space)."""
    return await service.embed(body)


def get_completion_service(
    state: StateDep, chat: ChatServiceDep, access: CurrentAccess
) -> CompletionService:
    settings = state["settings"]
    return CompletionService(
        chat,
        max_messages=settings.openai_max_messages,
        max_request_chars=settings.openai_max_request_chars,
        max_message_chars=settings.chat_max_message_chars,
        access=access,
    )


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "With `stream: true`: `chat.completion.chunk` events, then "
            "`data: [DONE]`.",
        },
        **_errors(400, 401, 404, 413, 429, 502, 503, 504),
    },
    dependencies=[ChatRateLimit],
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    caller: CurrentPrincipal,
    service: Annotated[CompletionService, Depends(get_completion_service)],
    state: StateDep,
    access: CurrentAccess,
) -> ChatCompletion | StreamingResponse:
    """Answer the last user message from your knowledge base (model `rag`), citing sources
    as `[n]`; the earlier messages are the conversation so far. `sources` is an extension."""
    if body.stream:
        # The stream outlives this check of the credential and of the caller's collections:
        # it re-checks both as it goes.
        reached = model_visibility(body.model, access).collection_ids
        events = await service.stream(
            caller,
            body,
            still_valid=functools.partial(still_reaches, state, caller, reached),
            check_seconds=state["settings"].stream_principal_check_seconds,
        )
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    return await service.complete(caller, body)
