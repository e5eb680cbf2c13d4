"""Imports every model so that `Base.metadata` is complete (Alembic, create_all)."""

from app.admin.models import AuditEntry
from app.apikeys.models import ApiKey
from app.auth.models import RefreshToken, User
from app.chat.models import ChatMessage
from app.conversations.models import Conversation
from app.core.db import Base
from app.core.scheduler import JobRun
from app.documents.models import Document
from app.feedback.models import MessageFeedback
from app.rag.backends.local import VectorEntry, VectorStoreState
from app.rag.lexical import LexicalChunk
from app.usage.models import TokenReservation, TokenUsage

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "ChatMessage",
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
