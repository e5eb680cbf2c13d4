"""Settings: the one source of configuration, read from the environment and `.env`."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

DEV_SECRET_FILE = Path(".secret_key")
MIN_SECRET_LENGTH = 32
KNOWN_DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "your-secret-key"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # Validation errors must not print what they were given: it may be a secret.
        hide_input_in_errors=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"

    # Database
    database_url: str = "sqlite+aiosqlite:///./chatbot.db"
    database_echo: bool = False
    database_pool_size: int = Field(default=10, ge=1)
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)

    # Tokens
    secret_key: SecretStr = SecretStr("")
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: int = Field(default=15, ge=1)
    refresh_token_expire_days: int = Field(default=7, ge=1)
    # Cost of argon2id; tests lower it. Defaults follow argon2-cffi's RFC 9106 "low memory" profile.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65_536, ge=8)

    # Chat and retention
    chat_max_message_chars: int = Field(default=4_000, ge=1)
    chat_history_default_limit: int = Field(default=100, ge=1)
    chat_history_max_limit: int = Field(default=500, ge=1)
    chat_retention_days: int = Field(default=30, ge=1)
    cleanup_interval_hours: float = Field(default=24, gt=0)
    cleanup_batch_size: int = Field(default=1_000, ge=1)
    scheduler_enabled: bool = True

    # RAG backends: "auto" picks the remote backend when its key is set, else the embedded one.
    embedding_backend: Literal["auto", "local", "huggingface"] = "auto"
    vector_store: Literal["auto", "local", "pinecone"] = "auto"
    llm_backend: Literal["auto", "extractive", "huggingface"] = "auto"

    huggingface_api_key: SecretStr | None = None
    embedding_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    embedding_url: str | None = None
    embedding_batch_size: int = Field(default=32, ge=1)
    # Remote embedders only: the local model reports its own dimension.
    embedding_dimension: int = Field(default=384, ge=1)
    embedding_timeout_seconds: float = Field(default=30, gt=0)
    llm_model: str = "mistralai/Mistral-7B-Instruct-v0.2"
    llm_base_url: str | None = None
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    llm_max_tokens: int = Field(default=512, ge=1)
    llm_context_tokens: int = Field(default=8_192, ge=256)
    llm_timeout_seconds: float = Field(default=60, gt=0)
    llm_retry_deadline_seconds: float = Field(default=20, ge=0)

    pinecone_api_key: SecretStr | None = None
    pinecone_index: str = "chatbot-index"
    pinecone_host: str | None = None
    # Control-plane URL override (Pinecone Local or a test server); the SDK default otherwise.
    pinecone_controller_host: str | None = None
    pinecone_timeout_seconds: float = Field(default=10, gt=0)
    # Bound on one store call including the SDK's own retries (it retries 5xx/timeouts 3 times).
    pinecone_deadline_seconds: float = Field(default=30, gt=0)
    pinecone_namespace: str = ""
    pinecone_cloud: str = "aws"
    pinecone_region: str = "us-east-1"

    rag_top_k: int = Field(default=3, ge=1, le=50)
    rag_min_score: float = Field(default=0.3, ge=-1, le=1)
    rag_fallback: Literal["refuse", "general"] = "refuse"

    # Documents
    max_upload_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    chunk_tokens: int = Field(default=200, ge=16)
    chunk_overlap_tokens: int = Field(default=40, ge=0)
    ingest_inline_max_chunks: int = Field(default=32, ge=0)

    @field_validator(
        "huggingface_api_key",
        "embedding_url",
        "llm_base_url",
        "pinecone_api_key",
        "pinecone_host",
        "pinecone_controller_host",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `KEY=` in .env (as in .env.example) means "not set", not "set to nothing".
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_TOKENS")
        if self.chat_history_default_limit > self.chat_history_max_limit:
            raise ValueError("CHAT_HISTORY_DEFAULT_LIMIT exceeds CHAT_HISTORY_MAX_LIMIT")
        secret = self.secret_key.get_secret_value()
        weak = secret.lower() in KNOWN_DEFAULT_SECRETS or len(secret) < MIN_SECRET_LENGTH
        if weak and self.environment is Environment.PRODUCTION:
            raise ValueError(
                f"SECRET_KEY must be set to a random value of at least {MIN_SECRET_LENGTH} "
                "characters in production (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)"
            )
        return self

    @cached_property
    def signing_key(self) -> str:
        """The JWT key; outside production a missing one is generated once and kept on disk."""
        secret = self.secret_key.get_secret_value()
        if secret:
            return secret
        if DEV_SECRET_FILE.exists():
            return DEV_SECRET_FILE.read_text().strip()
        generated = secrets.token_urlsafe(48)
        DEV_SECRET_FILE.write_text(generated)
        DEV_SECRET_FILE.chmod(0o600)
        logger.warning(
            "SECRET_KEY is not set: generated one in %s (development only)", DEV_SECRET_FILE
        )
        return generated

    @property
    def access_token_lifetime(self) -> timedelta:
        return timedelta(minutes=self.access_token_expire_minutes)

    @property
    def refresh_token_lifetime(self) -> timedelta:
        return timedelta(days=self.refresh_token_expire_days)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def resolved_embedding_backend(self) -> Literal["local", "huggingface"]:
        if self.embedding_backend != "auto":
            return self.embedding_backend
        return "huggingface" if self.huggingface_api_key or self.embedding_url else "local"

    @property
    def resolved_vector_store(self) -> Literal["local", "pinecone"]:
        if self.vector_store != "auto":
            return self.vector_store
        return "pinecone" if self.pinecone_api_key else "local"

    @property
    def resolved_llm_backend(self) -> Literal["extractive", "huggingface"]:
        if self.llm_backend != "auto":
            return self.llm_backend
        return "huggingface" if self.huggingface_api_key or self.llm_base_url else "extractive"
