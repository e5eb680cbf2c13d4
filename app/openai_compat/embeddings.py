"""`POST /v1/embeddings` with the configured embedder: the vector space our store uses."""

from __future__ import annotations

import base64

import numpy as np

from app.openai_compat.errors import InvalidRequest, ModelNotFound
from app.openai_compat.schemas import Embedding, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from app.rag.protocols import Embedder
from app.rag.text import count_tokens

EMBEDDING_MODEL = "rag-embedding"


class EmbeddingService:
    """Embeds in the encoder's bulk lane (the ingestion lane), a batch at a time, so chat
    questions from every user go first; a request's inputs are bounded in count, in length and
    in total characters before any is queued."""

    def __init__(
        self,
        embedder: Embedder,
        *,
        model_aliases: frozenset[str],
        batch_size: int,
        max_inputs: int,
        max_input_chars: int,
        max_request_chars: int,
    ) -> None:
        self.embedder = embedder
        self.model_names = frozenset({EMBEDDING_MODEL, *model_aliases})
        self.batch_size = batch_size
        self.max_inputs = max_inputs
        self.max_input_chars = max_input_chars
        self.max_request_chars = max_request_chars

    def _inputs(self, request: EmbeddingRequest) -> list[str]:
        if request.model not in self.model_names:
            raise ModelNotFound(request.model)
        texts = [request.input] if isinstance(request.input, str) else list(request.input)
        if not texts:
            raise InvalidRequest("`input` must not be empty.", param="input")
        if len(texts) > self.max_inputs:
            raise InvalidRequest(f"At most {self.max_inputs} inputs per request.", param="input")
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidRequest("Inputs must not be blank.", param=f"input[{i}]")
            if len(text) > self.max_input_chars:
                raise InvalidRequest(
                    f"Inputs are limited to {self.max_input_chars} characters.",
                    param=f"input[{i}]",
                )
        if sum(len(text) for text in texts) > self.max_request_chars:
            raise InvalidRequest(
                f"The inputs exceed {self.max_request_chars} characters in total.", param="input"
            )
        if request.dimensions is not None and request.dimensions != self.embedder.dimension:
            raise InvalidRequest(
                f"This model has {self.embedder.dimension} dimensions; it cannot be shortened.",
                param="dimensions",
            )
        return texts

    async def embed(self, request: EmbeddingRequest) -> EmbeddingList:
        texts = self._inputs(request)
        data: list[Embedding] = []
        for start in range(0, len(texts), self.batch_size):
            vectors = await self.embedder.embed(
                texts[start : start + self.batch_size], priority="bulk"
            )
            for offset, vector in enumerate(vectors):
                value: list[float] | str
                if request.encoding_format == "base64":
                    # What the SDKs decode: little-endian float32, base64.
                    raw = np.asarray(vector, dtype="<f4").tobytes()
                    value = base64.b64encode(raw).decode("ascii")
                else:
                    value = vector.tolist()
                data.append(Embedding(index=start + offset, embedding=value))
        tokens = sum(count_tokens(t) for t in texts)
        return EmbeddingList(
            data=data,
            model=request.model,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )
