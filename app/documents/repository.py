from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.documents.models import Document


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
        self, *, owner_id: int | None, shared: bool, content_hash: str
    ) -> Document | None:
        query = select(Document).where(
            Document.content_hash == content_hash, Document.shared == shared
        )
        # Shared documents are one pool whoever added them; private ones are per owner.
        if not shared:
            query = query.where(Document.owner_id == owner_id)
        return (await self.session.execute(query.limit(1))).scalar_one_or_none()

    async def visible_to(self, user_id: int) -> Sequence[Document]:
        query = (
            select(Document)
            .where(or_(Document.owner_id == user_id, Document.shared.is_(True)))
            .order_by(Document.id)
        )
        return (await self.session.execute(query)).scalars().all()
