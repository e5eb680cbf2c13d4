"""Account deletion: the user and everything they own, across the database and the vector
store; resumable after a crash."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.security import PasswordHasher
from app.auth.service import deactivate_user
from app.collections.service import mark_owner_removal, remove_solely_owned
from app.core import metrics
from app.core.db import utcnow
from app.core.errors import InvalidCredentials, NotAuthenticated
from app.documents.service import DocumentService

logger = logging.getLogger(__name__)


class AccountDeletion:
    """Deletes an account in three committed steps, so a crash in between never exposes
    anything:

    1. `_begin`: the account is disabled (every token and key fails from here on), its
       refresh tokens revoked, its private documents marked `deleting` (invisible to
       retrieval) and the shared documents it added handed to the shared knowledge base;
       `users.deletion_started_at` records that a deletion started (a disabled account
       without it was only deactivated, `chatbot deactivate`, and is never deleted), and
       `deletion_claimed_until` claims the work for ACCOUNT_DELETION_CLAIM_SECONDS;
    2. `_purge_documents`: the vectors of its documents are deleted from the vector store,
       then the document rows;
    3. `_remove_user`: the user row is deleted, and the database cascades to messages,
       conversations, documents, tokens and keys.

    Every step is idempotent, so `recover()` finishes an interrupted deletion by redoing
    them from the first (without the password check), under a claim taken by one atomic
    UPDATE: of several processes starting together, one does each account. More cascades
    (e.g. collections) join as steps of their own, between 1 and 3, idempotent too.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hasher: PasswordHasher,
        documents: DocumentService,
    ) -> None:
        self.sessions = sessions
        self.hasher = hasher
        self.documents = documents
        self.claim_lifetime = timedelta(seconds=documents.settings.account_deletion_claim_seconds)
        self._sweeper: asyncio.Task[None] | None = None

    async def delete(self, user: User, password: str) -> None:
        if not await self.hasher.verify(password, user.password_hash):
            raise InvalidCredentials("Incorrect password.")
        await self.remove(user.id)

    async def remove(self, user_id: int) -> None:
        """The deletion without the password check: for `delete` and for an administrator
        (`DELETE /api/admin/users/{id}/`). `NotAuthenticated` if the account is gone."""
        try:
            document_ids = await self._begin(user_id)
            await self._purge_documents(document_ids)
            await self._remove_user(user_id)
        except NotAuthenticated:
            raise
        except BaseException:
            # Not a crash: free the claim so the next sweep finishes at once (the account is
            # disabled already, so its owner cannot ask again).
            await asyncio.shield(self._release(user_id))
            raise
        logger.info("deleted account %d and %d document(s)", user_id, len(document_ids))

    async def _begin(self, user_id: int) -> list[int]:
        """Step 1; returns the ids of the documents to purge."""
        async with self.sessions.begin() as session:
            users = UserRepository(session)
            current = await users.get(user_id)
            if current is None:
                raise NotAuthenticated("The account no longer exists.")
            await deactivate_user(users, RefreshTokenRepository(session), current)
            now = utcnow()
            current.deletion_started_at = current.deletion_started_at or now
            current.deletion_claimed_until = now + self.claim_lifetime
            # The collections it alone owns go with their documents; in the others, the
            # documents it uploaded stay (handed over by mark_owner_removal).
            collection_documents = await mark_owner_removal(session, self.documents, user_id)
            private = await self.documents.mark_owner_removal(session, user_id)
            return [*collection_documents, *private]

    async def _purge_documents(self, document_ids: Sequence[int]) -> None:
        """Step 2: the documents' vectors, then their rows."""
        if document_ids:
            await self.documents.purge(document_ids)

    async def _remove_user(self, user_id: int) -> None:
        """Step 3: the user row and, by cascade, everything else it owns."""
        async with self.sessions.begin() as session:
            await remove_solely_owned(session, user_id)
            # A statement, not the ORM's delete: a row another process removed first is no error.
            await session.execute(delete(User).where(User.id == user_id))

    async def _claim(self, user_id: int) -> bool:
        now = utcnow()
        async with self.sessions.begin() as session:
            result = await session.execute(
                update(User)
                .where(
                    User.id == user_id,
                    User.deletion_started_at.is_not(None),
                    or_(
                        User.deletion_claimed_until.is_(None),
                        User.deletion_claimed_until < now,
                    ),
                )
                .values(deletion_claimed_until=now + self.claim_lifetime)
            )
            return getattr(result, "rowcount", 0) == 1

    async def _release(self, user_id: int) -> None:
        try:
            async with self.sessions.begin() as session:
                await session.execute(
                    update(User).where(User.id == user_id).values(deletion_claimed_until=None)
                )
        except Exception:  # the database may be what failed: the claim then just expires
            logger.warning("could not release the deletion claim of account %d", user_id)

    async def recover(self) -> int:
        """Finish the account deletions a crash interrupted and nobody holds (their claim
        is absent or expired). Returns how many were finished here; one that fails again
        (e.g. the vector store is down) is left for the next run."""
        now = utcnow()
        async with self.sessions() as session:
            pending = list(
                (
                    await session.execute(
                        select(User.id)
                        .where(
                            User.deletion_started_at.is_not(None),
                            or_(
                                User.deletion_claimed_until.is_(None),
                                User.deletion_claimed_until < now,
                            ),
                        )
                        .order_by(User.id)
                    )
                ).scalars()
            )
        finished = 0
        for user_id in pending:
            if not await self._claim(user_id):
                continue  # another process took it
            try:
                document_ids = await self._begin(user_id)
                await self._purge_documents(document_ids)
                await self._remove_user(user_id)
            except NotAuthenticated:
                continue  # removed meanwhile
            except Exception:
                logger.warning("finishing the deletion of account %d failed", user_id)
                await self._release(user_id)
                continue
            finished += 1
            metrics.ACCOUNT_DELETIONS_RESUMED.inc()
            logger.info("finished the interrupted deletion of account %d", user_id)
        return finished

    def start_sweeping(self) -> None:
        """Run `recover()` every ACCOUNT_DELETION_CLAIM_SECONDS: a deletion whose process died
        with its claim still valid (at the start-up that followed) is finished once it expires."""
        if self._sweeper is not None:
            return
        interval = self.claim_lifetime.total_seconds()

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.recover()
                except Exception:  # the database may be down for a while: try next time
                    logger.warning("account deletion sweep failed", exc_info=True)

        self._sweeper = asyncio.create_task(loop())

    async def aclose(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
