"""Imports every model so that `Base.metadata` is complete (Alembic, create_all)."""

from app.admin.models import AuditEntry
from app.apikeys.models import ApiKey, ApiKeyCollection
from app.auth.models import RefreshToken, User
from app.chat.conversations.models import Conversation
from app.chat.models import ChatMessage
from app.collections.models import Collection, CollectionMember
from app.core.db import Base
from app.core.scheduler import JobRun
from app.documents.models import Document
from app.feedback.models import MessageFeedback
from app.rag.backends.local import VectorEntry, VectorStoreState
from app.rag.lexical import LexicalChunk
from app.usage.models import TokenReservation, TokenUsage

__all__ = [
    "ApiKey",
    "ApiKeyCollection",
    "AuditEntry",
    "Base",
    "ChatMessage",
    "Collection",
    "CollectionMember",
    "Conversation",
    "Document",
    "JobRun",
    "LexicalChunk",
    "MessageFeedback",
    "RefreshToken",
    "TokenReservation",
    "TokenUsage",
    "User",
    "VectorEntry",
    "VectorStoreState",
]
