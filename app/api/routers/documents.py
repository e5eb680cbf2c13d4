from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.api.access import CurrentAccess
from app.api.deps import MAX_ID, StateDep
from app.api.principal import CurrentUser
from app.api.ratelimits import UploadRateLimit
from app.auth.models import User
from app.collections.access import CollectionAccess, CollectionNotFound
from app.collections.models import CollectionRole
from app.core.errors import (
    Conflict,
    InvalidInput,
    MalformedBody,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    QuotaExceeded,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamUnavailable,
    error_responses,
)
from app.core.ratelimit import TooManyRequests
from app.core.validation import strip_nul
from app.documents.formats import ACCEPTED, ExtractionLimits, extract_upload
from app.documents.models import Document
from app.documents.schemas import DocumentCreate, DocumentRead
from app.documents.service import DocumentService, NewDocument

router = APIRouter(prefix="/api/documents", tags=["documents"])

# Room for multipart boundaries and form fields around the file itself.
MULTIPART_OVERHEAD = 64 * 1024

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": DocumentCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": f"One of {ACCEPTED}, recognised by content",
                        },
                        "title": {"type": "string", "description": "Defaults to the file name"},
                        "shared": {"type": "boolean", "default": False},
                        "collection_id": {
                            "type": "integer",
                            "description": "Add it to this collection (editors and owners)",
                        },
                    },
                }
            },
        },
    }
}


def get_documents(state: StateDep) -> DocumentService:
    return state["documents"]


DocumentServiceDep = Annotated[DocumentService, Depends(get_documents)]


async def visible_document(
    document_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    access: CurrentAccess,
    service: DocumentServiceDep,
) -> Document:
    return await service.get_visible(document_id, access.visibility())


def authorize_upload(access: CollectionAccess, collection_id: int | None, shared: bool) -> None:
    """Before any extraction work: a collection's editors and owners may add to it (404 for
    non-members); a collection-scoped key may add only to its collections."""
    if collection_id is None:
        if access.scoped:
            raise PermissionDenied("This API key may only add documents to its collections.")
        return
    if shared:
        raise InvalidInput("A document is either shared or in a collection, not both.")
    access.require(collection_id, CollectionRole.EDITOR)


def _form_collection_id(value: object) -> int | None:
    raw = strip_nul(str(value or "")).strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_ID:
        raise InvalidInput("collection_id must be a collection's id.")
    return int(raw)


VisibleDocument = Annotated[Document, Depends(visible_document)]


async def _read_json(request: Request, limit: int) -> NewDocument:
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise PayloadTooLarge(f"The document is larger than {limit} bytes.")
    try:
        data = DocumentCreate.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc
    return NewDocument(
        title=data.title,
        content=data.content,
        shared=data.shared,
        collection_id=data.collection_id,
    )


async def _read_multipart(
    request: Request, limit: int, limits: ExtractionLimits, access: CollectionAccess
) -> NewDocument:
    # app.api.bodylimit counts the body as it streams, so a chunked upload without Content-Length
    # is stopped at the limit instead of being spooled to disk whole.
    async with request.form(max_files=1, max_fields=10, max_part_size=64 * 1024) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("Send the document as the multipart field `file`.")
        if upload.size is not None and upload.size > limit:
            raise PayloadTooLarge(f"The file is larger than {limit} bytes.")
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"The file is larger than {limit} bytes.")
        filename = strip_nul(upload.filename)[:300]
        title = strip_nul(str(form.get("title") or "")).strip() or filename
        shared = str(form.get("shared") or "false").strip().lower() in {"1", "true", "yes", "on"}
        collection_id = _form_collection_id(form.get("collection_id"))
        authorize_upload(access, collection_id, shared)
        # The type comes from the content (magic bytes, zip members), not the name alone.
        content_type, text = await asyncio.to_thread(extract_upload, data, filename, limits)
        return NewDocument(
            title=title[:300],
            content=text,
            content_type=content_type,
            filename=filename,
            shared=shared,
            collection_id=collection_id,
        )


@router.post(
    "/",
    status_code=status.HTTP_201_CREATED,
    response_model=DocumentRead,
    openapi_extra=_UPLOAD_BODY,
    responses={
        200: {"model": DocumentRead, "description": "Same content uploaded before: unchanged"},
        **error_responses(
            MalformedBody,
            NotAuthenticated,
            PermissionDenied,
            CollectionNotFound,
            QuotaExceeded,
            Conflict,
            PayloadTooLarge,
            UnsupportedMediaType,
            InvalidInput,
            UpstreamError,
            UpstreamUnavailable,
            TooManyRequests,
        ),
    },
    dependencies=[UploadRateLimit],
)
async def create_document(
    request: Request,
    response: Response,
    user: CurrentUser,
    access: CurrentAccess,
    service: DocumentServiceDep,
) -> DocumentRead:
    """Add a document, as JSON `{"title", "content"}` or a multipart `file` upload; with
    `collection_id` (a JSON or form field) to a collection you edit or own.

    Small documents are indexed before the response (`status: ready`); large ones in the
    background (`status: processing`, poll `GET /api/documents/{id}/`).
    """
    limit = service.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"The upload is larger than {limit} bytes.")
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json":
        new = await _read_json(request, limit)
        authorize_upload(access, new.collection_id, new.shared)
    elif media_type == "multipart/form-data":
        new = await _read_multipart(request, limit, service.extraction_limits, access)
    else:
        raise UnsupportedMediaType("Send application/json or multipart/form-data.")
    if new.shared and not user.is_admin:
        raise PermissionDenied("Only administrators can add shared documents.")
    document, created = await service.add(new, owner_id=user.id)
    if not created:
        response.status_code = status.HTTP_200_OK
    return DocumentRead.model_validate(document)


@router.get(
    "/",
    response_model=list[DocumentRead],
    responses=error_responses(NotAuthenticated, CollectionNotFound),
)
async def list_documents(
    access: CurrentAccess,
    service: DocumentServiceDep,
    collection_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only this collection's documents")
    ] = None,
) -> list[DocumentRead]:
    """Your documents, those of your collections and the shared ones; or one collection's."""
    visibility = access.visibility(None if collection_id is None else [collection_id])
    return [DocumentRead.model_validate(d) for d in await service.visible_to(visibility)]


@router.get(
    "/{document_id}/",
    response_model=DocumentRead,
    responses=error_responses(NotAuthenticated, NotFound),
)
async def get_document(document: VisibleDocument) -> DocumentRead:
    return DocumentRead.model_validate(document)


def _may_delete(user: User, access: CollectionAccess, document: Document) -> bool:
    if document.collection_id is not None:
        access.require(document.collection_id, CollectionRole.EDITOR)
        return True
    return user.is_admin if document.shared else document.owner_id == user.id


@router.delete(
    "/{document_id}/",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(NotAuthenticated, PermissionDenied, NotFound, UpstreamUnavailable),
)
async def delete_document(
    document: VisibleDocument,
    user: CurrentUser,
    access: CurrentAccess,
    service: DocumentServiceDep,
) -> Response:
    """Delete a document and its vectors (a collection's: its editors and owners)."""
    if not _may_delete(user, access, document):
        raise PermissionDenied("Only administrators can delete shared documents.")
    await service.remove(document)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
