from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import AuditEntry
from app.apikeys.models import ApiKey
from app.auth.models import User
from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.documents.models import Document
from app.usage.models import TokenUsage


class AdminUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: int) -> User | None:
        return await self.session.get(User, user_id)

    async def search(self, *, q: str | None, limit: int, after_id: int | None) -> Sequence[User]:
        """Users whose email or username contains `q` (any case), by id."""
        query = select(User)
        if q:
            query = query.where(
                or_(
                    User.email.icontains(q, autoescape=True),
                    User.username.icontains(q, autoescape=True),
                )
            )
        if after_id is not None:
            query = query.where(User.id > after_id)
        return (await self.session.execute(query.order_by(User.id).limit(limit))).scalars().all()

    async def lock_active_admins(self) -> list[int]:
        """The active administrators' ids, their rows locked until the transaction ends
        (PostgreSQL), so two administrators demoting each other cannot both succeed."""
        query = (
            select(User.id)
            .where(User.is_admin.is_(True), User.is_active.is_(True))
            .order_by(User.id)
            .with_for_update()
        )
        return list((await self.session.execute(query)).scalars())

    async def _count(self, query: Select[Any]) -> int:
        return int((await self.session.execute(query)).scalar_one())

    async def counts(self, user_id: int, today: date) -> dict[str, int]:
        return {
            "documents": await self._count(
                select(func.count(Document.id)).where(Document.owner_id == user_id)
            ),
            "conversations": await self._count(
                select(func.count(Conversation.id)).where(Conversation.owner_id == user_id)
            ),
            "messages": await self._count(
                select(func.count(ChatMessage.id)).where(ChatMessage.user_id == user_id)
            ),
            "api_keys": await self._count(
                select(func.count(ApiKey.id)).where(
                    ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)
                )
            ),
            "tokens_total": await self._count(
                select(
                    func.coalesce(
                        func.sum(TokenUsage.prompt_tokens + TokenUsage.completion_tokens), 0
                    )
                ).where(TokenUsage.user_id == user_id)
            ),
            "tokens_today": await self._count(
                select(
                    func.coalesce(
                        func.sum(TokenUsage.prompt_tokens + TokenUsage.completion_tokens), 0
                    )
                ).where(TokenUsage.user_id == user_id, TokenUsage.day == today)
            ),
        }


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: AuditEntry) -> AuditEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def page(self, *, limit: int, before_id: int | None) -> Sequence[AuditEntry]:
        """Newest first, older than `before_id`."""
        query = select(AuditEntry)
        if before_id is not None:
            query = query.where(AuditEntry.id < before_id)
        query = query.order_by(AuditEntry.id.desc()).limit(limit)
        return (await self.session.execute(query)).scalars().all()

    async def purge(self, before: datetime, *, batch_size: int) -> int:
        ids = (
            select(AuditEntry.id)
            .where(AuditEntry.created_at < before)
            .order_by(AuditEntry.id)
            .limit(batch_size)
            .scalar_subquery()
        )
        result = await self.session.execute(
            delete(AuditEntry).where(AuditEntry.id.in_(ids)),
            execution_options={"synchronize_session": False},
        )
        return int(getattr(result, "rowcount", 0))
