"""User administration and its audit log. Every change an administrator makes is written to
the audit log in the same transaction as the change itself."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.accounts.service import AccountDeletion
from app.admin.models import AuditEntry
from app.admin.repository import AdminUserRepository, AuditRepository
from app.admin.schemas import AdminUserDetail, AdminUserRead, AdminUserUpdate
from app.auth.models import User
from app.auth.principal import Principal
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.service import deactivate_user
from app.chat.conversations.paging import decode_id_cursor, encode_cursor
from app.core.db import utcnow
from app.core.errors import Conflict, NotFound
from app.usage.meter import UsageMeter

logger = logging.getLogger(__name__)


class UserNotFound(NotFound):
    code = "user_not_found"
    default_detail = "No such user."


class LastAdmin(Conflict):
    code = "last_admin"
    default_detail = "This is the last active administrator; make another one first."


class AuditLog:
    """Writes and reads the audit log in the caller's session."""

    def __init__(self, session: AsyncSession) -> None:
        self.entries = AuditRepository(session)

    async def record(
        self,
        actor: Principal,
        action: str,
        target_type: str,
        target_id: int | None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        details = dict(details or {})
        if actor.key_id is not None:
            details.setdefault("via_api_key", actor.key_id)
        entry = await self.entries.add(
            AuditEntry(
                actor_id=actor.user.id,
                actor_email=actor.user.email,
                action=action,
                target_type=target_type,
                target_id=target_id,
                details=details,
                created_at=utcnow(),
            )
        )
        logger.info("admin %d: %s %s %s", actor.user.id, action, target_type, target_id)
        return entry

    async def page(
        self, *, limit: int, cursor: str | None
    ) -> tuple[Sequence[AuditEntry], str | None]:
        before = decode_id_cursor(cursor) if cursor else None
        rows = await self.entries.page(limit=limit + 1, before_id=before)
        items = rows[:limit]
        return items, encode_cursor(items[-1].id) if len(rows) > limit else None


class AdminService:
    """User management for administrators, in the request's session (committed by the
    session dependency, with the audit entry)."""

    def __init__(self, session: AsyncSession, meter: UsageMeter) -> None:
        self.session = session
        self.users = AdminUserRepository(session)
        self.audit = AuditLog(session)
        self.meter = meter

    async def search(
        self, *, q: str | None, limit: int, cursor: str | None
    ) -> tuple[Sequence[User], str | None]:
        after = decode_id_cursor(cursor) if cursor else None
        rows = await self.users.search(q=q, limit=limit + 1, after_id=after)
        items = rows[:limit]
        return items, encode_cursor(items[-1].id) if len(rows) > limit else None

    async def detail(self, user_id: int) -> AdminUserDetail:
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound()
        counts = await self.users.counts(user.id, self.meter.clock().date())
        return AdminUserDetail(
            **AdminUserRead.model_validate(user).model_dump(),
            effective_daily_token_budget=self.meter.budget_of(user),
            **counts,
        )

    async def _refuse_last_admin(self, user: User) -> None:
        """`LastAdmin` if `user` is the only active administrator. Locks the administrators'
        rows first, so concurrent demotions are decided one after the other."""
        admins = await self.users.lock_active_admins()
        if admins == [user.id]:
            raise LastAdmin()

    async def update(self, actor: Principal, user_id: int, data: AdminUserUpdate) -> User:
        wanted = data.model_dump(exclude_unset=True)
        # Written first: on SQLite the transaction then holds the write lock from its start.
        entry = await self.audit.record(actor, "user.update", "user", user_id, {})
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound()
        for field in ("is_active", "is_admin"):
            if wanted.get(field) is None:
                wanted.pop(field, None)
        if (
            user.is_admin
            and user.is_active
            and False
            in (
                wanted.get("is_active"),
                wanted.get("is_admin"),
            )
        ):
            await self._refuse_last_admin(user)
        changes: dict[str, list[Any]] = {}
        for field, value in wanted.items():
            before = getattr(user, field)
            if before != value:
                changes[field] = [before, value]
        if "is_active" in changes and not wanted["is_active"]:
            # Tokens and keys check `is_active` on every request; refresh tokens are revoked.
            await deactivate_user(
                UserRepository(self.session), RefreshTokenRepository(self.session), user
            )
        for field, value in wanted.items():
            setattr(user, field, value)
        entry.details = {"changes": changes}
        await self.session.flush()
        return user

    async def begin_delete(self, actor: Principal, user_id: int) -> None:
        """Check and record a deletion, and disable the account at once (in the request's
        transaction, under the administrators' lock, so the last administrator cannot be
        deleted by two concurrent requests); `AccountDeletion.remove` then does the rest."""
        entry = await self.audit.record(actor, "user.delete", "user", user_id, {})
        user = await self.users.get(user_id)
        if user is None:
            raise UserNotFound()
        if user.is_admin and user.is_active:
            await self._refuse_last_admin(user)
        entry.details = {"email": user.email}
        await deactivate_user(
            UserRepository(self.session), RefreshTokenRepository(self.session), user
        )


async def delete_user(
    sessions: async_sessionmaker[AsyncSession],
    deletion: AccountDeletion,
    meter: UsageMeter,
    actor: Principal,
    user_id: int,
) -> None:
    """`DELETE /api/admin/users/{id}/`: the check, the audit entry and the account disabled in
    one transaction, then the same cascade as `DELETE /api/me/` (vectors included)."""
    async with sessions.begin() as session:
        await AdminService(session, meter).begin_delete(actor, user_id)
    await deletion.remove(user_id)


async def purge_audit(
    sessions: async_sessionmaker[AsyncSession],
    *,
    retention_days: int,
    batch_size: int,
    now: datetime | None = None,
) -> int:
    """Delete audit entries older than `retention_days`, in short batches; how many."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    total = 0
    while True:
        async with sessions.begin() as session:
            deleted = await AuditRepository(session).purge(cutoff, batch_size=batch_size)
        total += deleted
        if deleted < batch_size:
            return total
