"""Account deletion: the user and everything they own, across the database and the vector
store."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.auth.models import User
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.security import PasswordHasher
from app.auth.service import deactivate_user
from app.core.errors import InvalidCredentials, NotAuthenticated
from app.documents.service import DocumentService

logger = logging.getLogger(__name__)


class AccountDeletion:
    """Deletes an account in three committed steps, so a crash in between never exposes
    anything: (1) the account is disabled (every token and key fails from here on), its
    refresh tokens revoked, its private documents marked `deleting` (invisible to retrieval)
    and the shared documents it added handed to the shared knowledge base; (2) the vectors of
    its documents are deleted from the vector store; (3) the user row is deleted, and the
    database cascades to messages, conversations, documents, tokens and keys."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        hasher: PasswordHasher,
        documents: DocumentService,
    ) -> None:
        self.sessions = sessions
        self.hasher = hasher
        self.documents = documents

    async def delete(self, user: User, password: str) -> None:
        if not await self.hasher.verify(password, user.password_hash):
            raise InvalidCredentials("Incorrect password.")
        await self.remove(user.id)

    async def remove(self, user_id: int) -> None:
        """The deletion without the password check: for `delete` and for an administrator
        (`DELETE /api/admin/users/{id}/`). `NotAuthenticated` if the account is gone."""
        async with self.sessions.begin() as session:
            users = UserRepository(session)
            current = await users.get(user_id)
            if current is None:
                raise NotAuthenticated("The account no longer exists.")
            await deactivate_user(users, RefreshTokenRepository(session), current)
            document_ids = await self.documents.mark_owner_removal(session, user_id)
        await self.documents.purge(document_ids)
        async with self.sessions.begin() as session:
            users = UserRepository(session)
            current = await users.get(user_id)
            if current is not None:
                await users.delete(current)
        logger.info("deleted account %d and %d document(s)", user_id, len(document_ids))
