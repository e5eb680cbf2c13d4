from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import and_, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from app.documents.models import Document
from app.rag.protocols import Visibility


def visible_clause(visibility: Visibility) -> ColumnElement[bool]:
    """The visibility rule over the documents table (the stores apply the same rule to their
    own rows): the owner's private documents, the listed collections', the shared ones."""
    clauses: list[ColumnElement[bool]] = []
    if visibility.owner_id is not None:
        clauses.append(
            and_(
                Document.owner_id == visibility.owner_id,
                Document.shared.is_(False),
                Document.collection_id.is_(None),
            )
        )
    if visibility.collection_ids:
        clauses.append(Document.collection_id.in_(sorted(visibility.collection_ids)))
    if visibility.include_shared:
        clauses.append(Document.shared.is_(True))
    return or_(*clauses) if clauses else false()


class DocumentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, document_id: int) -> Document | None:
        return await self.session.get(Document, document_id)

    async def add(self, document: Document) -> Document:
        self.session.add(document)
        await self.session.flush()
        return document

    async def delete(self, document: Document) -> None:
        await self.session.delete(document)
        await self.session.flush()

    async def find_duplicate(
        self,
        *,
        owner_id: int | None,
        shared: bool,
        content_hash: str,
        collection_id: int | None = None,
    ) -> Document | None:
        query = select(Document).where(Document.content_hash == content_hash)
        # Shared documents are one pool whoever added them; a collection's are one pool
        # whoever uploaded them; private ones are per owner.
        if collection_id is not None:
            query = query.where(Document.collection_id == collection_id)
        elif shared:
            query = query.where(Document.shared.is_(True))
        else:
            query = query.where(
                Document.shared.is_(False),
                Document.collection_id.is_(None),
                Document.owner_id == owner_id,
            )
        return (await self.session.execute(query.limit(1))).scalar_one_or_none()

    async def visible_to(self, visibility: Visibility) -> Sequence[Document]:
        query = select(Document).where(visible_clause(visibility)).order_by(Document.id)
        return (await self.session.execute(query)).scalars().all()
