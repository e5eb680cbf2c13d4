"""Settings: the one source of configuration, read from the environment and `.env`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import sys
import tempfile
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

logger = logging.getLogger(__name__)

# A checkout has pyproject.toml beside app/; an installed package (the container) does not.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEV_KEY_FILE = ".secret_key"
MIN_SECRET_LENGTH = 32
KNOWN_DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "your-secret-key"})
# Origins no front end of ours has (reserved names, the sandboxed `null`): a CORS_ORIGIN_REGEX
# that matches one of them admits origins nobody listed, which with credentials is `*`.
CORS_PROBE_ORIGINS = (
    "https://evil.example",
    "http://attacker.test",
    "https://attacker.test:8443",
    "null",
)


class ConfigurationError(ValueError):
    """A setting, or a file a setting points at, is unusable; the message names it."""


def chatbot_home() -> Path:
    """The one folder the defaults live in: the SQLite database `chatbot.db`, the generated
    development key `.secret_key` and the `.env` file.

    `CHATBOT_HOME` (an environment variable, not a `.env` setting) if set; else the project
    folder of a checkout, so `chatbot` run from any folder uses the database `make run` serves;
    else (an installed package without a checkout, like the container) the current directory.
    """
    if home := os.environ.get("CHATBOT_HOME", "").strip():
        return Path(home).expanduser().resolve()
    if (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "app").is_dir():
        return PROJECT_ROOT
    return Path.cwd()


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{chatbot_home() / 'chatbot.db'}"


def development_secret(path: Path) -> str:
    """Read the generated development key, creating it if missing.

    Created atomically with mode 0600: the key is written to a private temporary file and
    linked into place, so a crash or a concurrent start never leaves an empty or partial key
    (an empty key would sign tokens anyone can forge).
    """
    if not path.exists():
        generated = secrets.token_urlsafe(48)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as file:  # mkstemp creates it 0600
                file.write(generated)
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(temp, path)
                logger.warning(
                    "SECRET_KEY is not set: generated one in %s (development only)", path
                )
        finally:
            os.unlink(temp)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_LENGTH:
        raise ConfigurationError(
            f"{path} holds a key shorter than {MIN_SECRET_LENGTH} characters: delete the file "
            "to have a new one generated, or set SECRET_KEY"
        )
    return key


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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # `.env` is the one in chatbot_home(), not whichever the current directory holds, so
        # `chatbot ingest` from another folder reads the same settings as the server. An
        # explicit `_env_file` (tests pass None) is kept.
        if isinstance(dotenv_settings, DotEnvSettingsSource) and dotenv_settings.env_file == ".env":
            dotenv_settings = DotEnvSettingsSource(settings_cls, env_file=chatbot_home() / ".env")
        return init_settings, env_settings, dotenv_settings, file_secret_settings

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    # The address of `chatbot serve` and `make run`; --host / --port override them.
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65_535)

    # Database
    database_url: str = Field(default_factory=default_database_url)
    database_echo: bool = False
    database_pool_size: int = Field(default=10, ge=1)
    # PostgreSQL: give up connecting, waiting for a pooled connection, or on one statement
    # after this long; the request is then a 503 with Retry-After, never a hang.
    database_connect_timeout_seconds: float = Field(default=5, gt=0)
    database_pool_timeout_seconds: float = Field(default=10, gt=0)
    database_statement_timeout_seconds: float = Field(default=30, gt=0)
    # Circuit breaker: after this many consecutive failed connects (0: never), connecting is
    # refused at once (503) for DATABASE_BREAKER_OPEN_SECONDS; then one request tries again,
    # and its success closes the breaker. A black-holed server then costs one request the
    # connect timeout per interval instead of every request.
    database_breaker_failures: int = Field(default=3, ge=0)
    database_breaker_open_seconds: float = Field(default=5, gt=0)
    sqlite_busy_timeout_ms: int = Field(default=15_000, ge=0)

    # Tokens
    secret_key: SecretStr = SecretStr("")
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    access_token_expire_minutes: int = Field(default=15, ge=1)
    refresh_token_expire_days: int = Field(default=7, ge=1)
    # Cost of argon2id; tests lower it. Defaults follow argon2-cffi's RFC 9106 "low memory" profile.
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_memory_kib: int = Field(default=65_536, ge=8)
    # Threads hashing passwords (a pool of their own, so a login flood cannot starve chat),
    # and how many calls may wait for them before a 503.
    password_hash_workers: int = Field(default=1, ge=1)
    password_hash_max_waiting: int = Field(default=64, ge=0)

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
    # Background ingestion: a worker's claim on a document lasts this long and is renewed
    # after every batch; an expired claim (a crashed worker) is taken over by the next sweep.
    ingest_claim_seconds: float = Field(default=60, gt=0)
    ingest_sweep_seconds: float = Field(default=30, ge=0)  # 0: only at start-up
    # Vectors a crash left in an external store (Pinecone) whose document is gone: swept in
    # the background, ORPHAN_SWEEP_PAGE_SIZE ids per page (Pinecone lists at most 100), at most
    # ORPHAN_SWEEP_PAGES pages per run, a run every ORPHAN_SWEEP_SECONDS (0: never).
    orphan_sweep_seconds: float = Field(default=600, ge=0)
    orphan_sweep_page_size: int = Field(default=100, ge=1, le=100)
    orphan_sweep_pages: int = Field(default=50, ge=1)
    # An account deletion holds a claim this long; one a crash interrupted is finished at the
    # next start-up, or by a running replica once the claim has expired (checked this often).
    account_deletion_claim_seconds: float = Field(default=60, gt=0)
    # Redis URL of the task queue (arq). Set: `chatbot worker` processes index documents,
    # shared by every replica. Unset: each app process indexes in the background itself.
    task_broker_url: str | None = None
    # One job indexes for at most this long, then queues its continuation; arq retries a job
    # whose worker died after TASK_JOB_TIMEOUT_SECONDS (+10 s).
    task_job_slice_seconds: float = Field(default=30, gt=0)
    task_job_timeout_seconds: float = Field(default=120, gt=0)
    task_max_tries: int = Field(default=5, ge=1)

    # Cost ceilings on hostile or heavy input (security)
    # Every JSON body but POST /api/documents/ (whose limit is MAX_UPLOAD_BYTES), counted
    # while it is read, before parsing and before authentication.
    max_json_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_pdf_pages: int = Field(default=2_000, ge=1)
    # Extracted text of one document, and the chunks it may make.
    max_document_chars: int = Field(default=5_000_000, ge=1)
    max_document_chunks: int = Field(default=10_000, ge=1)
    # Office files and EPUBs are zip archives, checked before anything is inflated: member
    # count, total uncompressed size, and the compression ratio of members over 1 MiB.
    max_zip_members: int = Field(default=10_000, ge=1)
    max_zip_uncompressed_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    max_zip_ratio: int = Field(default=100, ge=1)
    # XML tags of the parts a library loads whole (.docx, .pptx, a workbook's non-sheet
    # parts): each element costs a few hundred bytes of memory and Python time per block.
    max_xml_tags: int = Field(default=1_000_000, ge=1)
    # Spreadsheets and CSV: rows and cells per document (empty styled ones too), columns
    # per row.
    max_table_rows: int = Field(default=100_000, ge=1)
    max_table_columns: int = Field(default=1_000, ge=1)
    max_table_cells: int = Field(default=2_000_000, ge=1)
    # E-mail: MIME parts per message; nesting depth of MIME parts, JSON values, HTML tables.
    max_email_parts: int = Field(default=500, ge=1)
    max_nesting_depth: int = Field(default=32, ge=1)
    # Per-user quotas on private documents.
    user_max_documents: int = Field(default=1_000, ge=1)
    user_max_chunks: int = Field(default=200_000, ge=1)
    # Collections (team knowledge bases): how many one user may belong to (it bounds every
    # retrieval filter's list of collection ids), and members per collection.
    collection_max_per_user: int = Field(default=100, ge=1)
    collection_max_members: int = Field(default=500, ge=1)

    # HTTP edge: path prefix behind a proxy, API docs, CORS for browser front ends
    root_path: str = ""
    docs_enabled: bool = True
    # Empty: no cross-origin access. From the environment: comma-separated or a JSON list.
    cors_origins: Annotated[list[str], NoDecode] = []
    cors_origin_regex: str | None = None
    # The API uses bearer tokens, not cookies, so browsers need no credentials mode.
    cors_allow_credentials: bool = False
    cors_max_age_seconds: int = Field(default=600, ge=0)

    # API keys and the OpenAI-compatible API under /v1
    # Pepper of the keys' HMAC-SHA256. Unset: derived from SECRET_KEY, so rotating that
    # secret then invalidates every API key; set this to rotate them independently.
    api_key_pepper: SecretStr | None = None
    api_key_max_per_user: int = Field(default=20, ge=1)
    api_key_last_used_interval_seconds: int = Field(default=60, ge=0)
    # Request bodies of POST /v1/chat/completions and /v1/embeddings (others: MAX_JSON_BODY_BYTES).
    openai_max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    openai_max_messages: int = Field(default=500, ge=1)
    openai_max_request_chars: int = Field(default=400_000, ge=1)
    openai_embedding_max_inputs: int = Field(default=256, ge=1)
    openai_embedding_max_input_chars: int = Field(default=16_000, ge=1)
    # Characters of all inputs of one POST /v1/embeddings together (its cost ceiling).
    openai_embedding_max_request_chars: int = Field(default=100_000, ge=1)

    # The MCP server at /mcp (Streamable HTTP) for agents and IDE assistants (issue 20)
    mcp_enabled: bool = True
    # search_knowledge_base's `top_k` above this is a tool error.
    mcp_search_max_top_k: int = Field(default=20, ge=1, le=200)
    # read_document returns at most this many characters per call.
    mcp_read_max_chars: int = Field(default=50_000, ge=100)

    # Conversations, memory and streaming (issue 7)
    # Budget of the conversation's recent turns in the prompt; the question and context come first.
    chat_memory_tokens: int = Field(default=1_500, ge=0)
    # At most this many stored messages are read back as memory for one turn.
    chat_memory_max_messages: int = Field(default=20, ge=0, le=500)
    # Output bound of the LLM call that rewrites a follow-up into a standalone question.
    chat_condense_max_tokens: int = Field(default=64, ge=8)
    # One budget for all of a turn's upstream retries (condensing, embedding, answering), so
    # an outage answers 503 within it, not once per call; the condensing call's share of it
    # (past that, the follow-up is retrieved by the rules).
    chat_turn_deadline_seconds: float = Field(default=20, gt=0)
    chat_condense_deadline_seconds: float = Field(default=3, gt=0)
    conversation_title_chars: int = Field(default=60, ge=8, le=200)
    conversations_page_default: int = Field(default=20, ge=1)
    conversations_page_max: int = Field(default=100, ge=1)
    conversation_messages_page_default: int = Field(default=50, ge=1)
    conversation_messages_page_max: int = Field(default=200, ge=1)
    # An SSE comment is sent at least this often while a stream waits on the upstream.
    sse_keepalive_seconds: float = Field(default=15, gt=0)
    # An open /v1 stream re-checks its caller (account active, key unrevoked) at most this
    # often between upstream reads, and at least this often while the upstream is silent.
    stream_principal_check_seconds: float = Field(default=2, gt=0, le=2)

    # Operations: rate limits, metrics, logs, health (issue 9, part A)
    # false switches every rate limit off (benchmarks and load tests).
    rate_limit_enabled: bool = True
    # memory:// counts per process; redis://host:6379/0 shares the counts between replicas.
    rate_limit_storage_url: str = "memory://"
    rate_limit_key_prefix: str = "ratelimit"
    # Bound on one call to the Redis store; when it fails the request is let through (logged).
    rate_limit_storage_timeout_seconds: float = Field(default=0.5, gt=0)
    # Login and token endpoints, per client IP and per account (email, or refresh token subject).
    rate_limit_login_per_ip_per_minute: int = Field(default=30, ge=1)
    rate_limit_login_per_account_per_minute: int = Field(default=10, ge=1)
    # Per user, whichever credential (JWT or API key): chat turns (/api and /v1) and uploads.
    rate_limit_chat_per_minute: int = Field(default=30, ge=1)
    rate_limit_upload_per_minute: int = Field(default=10, ge=1)
    # POST /v1/embeddings per user, whichever credential.
    rate_limit_embeddings_per_minute: int = Field(default=30, ge=1)
    # Peers whose X-Forwarded-For names the client (uvicorn's --forwarded-allow-ips): comma-
    # separated addresses or networks, or * (only behind a proxy that overwrites the header).
    forwarded_allow_ips: str = "127.0.0.1"
    metrics_enabled: bool = True
    # When set, GET /metrics needs `Authorization: Bearer <token>`.
    metrics_token: SecretStr | None = None
    log_format: Literal["plain", "json"] = "plain"
    # GET /readyz gives up on the database after this long (503).
    readiness_timeout_seconds: float = Field(default=2, gt=0)

    # Performance (issue 10) and the embedder's priority lane (issue 9, fair sharing)
    # Local embedder: ingestion encodes this many chunks at a time, and a chat query waits for
    # at most one such sub-batch (queries go first).
    embedding_bulk_sub_batch: int = Field(default=4, ge=1)
    # Local embedder: recent query vectors kept, so a turn's question is encoded once.
    embedding_query_cache: int = Field(default=256, ge=0)
    # Extractive answers: sentence vectors kept by content hash (384 floats each: 1.5 KiB).
    extractive_cache_vectors: int = Field(default=20_000, ge=0)
    # torch threads of the local embedder; 0 is torch's default (one per core). One thread
    # keeps query latency steady when the cores are shared (workers, database, other apps).
    embedding_threads: int = Field(default=1, ge=0)

    # Hybrid retrieval (issue 11): dense vectors, the lexical index, or both fused by
    # reciprocal rank: weight / (RETRIEVAL_RRF_K + rank) summed over the rankings (the same k
    # fuses a follow-up's several queries). The defaults (docs/retrieval.md) keep the lexical
    # first hit within the top 3 whatever dense says.
    retrieval_mode: Literal["dense", "lexical", "hybrid"] = "hybrid"
    retrieval_dense_weight: float = Field(default=1.5, ge=0)
    retrieval_lexical_weight: float = Field(default=1.0, ge=0)
    retrieval_rrf_k: int = Field(default=2, ge=1)
    # Candidates each search returns before fusion and the dedupe of overlapping chunks.
    retrieval_candidates: int = Field(default=30, ge=1, le=1_000)
    # Re-ranking (issue 18, app.rag.rerank): a second stage over the first stage's
    # RERANK_CANDIDATES chunks: "local" (the embedder's best-sentence similarity, mixed with
    # the first stage's order by RERANK_PRIOR) or "tei" (a cross-encoder behind
    # text-embeddings-inference's POST /rerank at RERANK_URL). Off until it wins held out.
    rerank_backend: Literal["none", "local", "tei"] = "none"
    rerank_candidates: int = Field(default=20, ge=1, le=200)
    rerank_prior: float = Field(default=0.5, ge=0, le=1)
    rerank_url: str = ""
    rerank_api_key: SecretStr | None = None
    rerank_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    # Operators: token usage and budgets, feedback, the admin API (issue 19)
    # Prompt + completion tokens one user may spend per UTC day (0: no limit); an admin sets a
    # user's own with `daily_token_budget`. A turn in flight holds its prompt tokens plus its
    # max_tokens until it ends; a hold older than TOKEN_RESERVATION_SECONDS (a crash) lapses.
    user_daily_token_budget: int = Field(default=0, ge=0)
    token_reservation_seconds: float = Field(default=600, gt=0)
    # Ask OpenAI-compatible servers for `usage` on streamed answers (stream_options); turn off
    # for a server that refuses the field (the tokens are then estimated).
    llm_stream_usage: bool = True
    # GET /api/me/usage/ and /api/admin/usage/ look back at most this many days; token usage
    # records are kept USAGE_RETENTION_DAYS, admin audit entries AUDIT_RETENTION_DAYS.
    usage_max_days: int = Field(default=366, ge=1)
    usage_retention_days: int = Field(default=400, ge=1)
    audit_retention_days: int = Field(default=365, ge=1)
    admin_page_default: int = Field(default=50, ge=1)
    admin_page_max: int = Field(default=500, ge=1)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("rate_limit_storage_url")
    @classmethod
    def _check_rate_limit_storage(cls, value: str) -> str:
        if not value.startswith(("memory://", "redis://", "rediss://")):
            raise ValueError("RATE_LIMIT_STORAGE_URL must be memory:// or redis://host:port/db")
        return value

    @field_validator("root_path")
    @classmethod
    def _normalize_root_path(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith("/"):
            raise ValueError("ROOT_PATH must start with '/' (e.g. /chatbot)")
        return value

    @field_validator(
        "huggingface_api_key",
        "embedding_url",
        "llm_base_url",
        "pinecone_api_key",
        "pinecone_host",
        "pinecone_controller_host",
        "metrics_token",
        "task_broker_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `KEY=` in .env (as in .env.example) means "not set", not "set to nothing".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("database_url", mode="before")
    @classmethod
    def _empty_is_default_database(cls, value: object) -> object:
        return default_database_url() if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            # Starlette would then echo every origin back with credentials allowed.
            raise ValueError(
                "CORS_ORIGINS=* cannot be combined with CORS_ALLOW_CREDENTIALS=true: list the "
                "front ends' origins instead"
            )
        if self.cors_origin_regex:  # empty means unset (app/api/middleware.py)
            self._check_cors_origin_regex(self.cors_origin_regex)
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("CHUNK_OVERLAP_TOKENS must be smaller than CHUNK_TOKENS")
        if self.chat_history_default_limit > self.chat_history_max_limit:
            raise ValueError("CHAT_HISTORY_DEFAULT_LIMIT exceeds CHAT_HISTORY_MAX_LIMIT")
        secret = self.secret_key.get_secret_value()
        if not secret and self.environment is Environment.PRODUCTION:
            raise ValueError(
                "SECRET_KEY is required in production: set it to a random value of at least "
                f"{MIN_SECRET_LENGTH} characters, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        if secret and (secret.lower() in KNOWN_DEFAULT_SECRETS or len(secret) < MIN_SECRET_LENGTH):
            # Any environment: a short key signs tokens anyone can forge.
            raise ValueError(
                f"SECRET_KEY must be a random value of at least {MIN_SECRET_LENGTH} characters "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return self

    def _check_cors_origin_regex(self, pattern: str) -> None:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(
                f"CORS_ORIGIN_REGEX is not a valid regular expression: {exc}"
            ) from None
        if not self.cors_allow_credentials:
            return
        # Starlette full-matches the Origin header against the regex.
        admitted = [origin for origin in CORS_PROBE_ORIGINS if compiled.fullmatch(origin)]
        if admitted:
            raise ValueError(
                "CORS_ORIGIN_REGEX matches any origin (e.g. "
                f"{admitted[0]}) and cannot be combined with CORS_ALLOW_CREDENTIALS=true: "
                "anchor it to the front ends' hosts instead"
            )

    @cached_property
    def signing_key(self) -> str:
        """The JWT key; outside production a missing one is generated once and kept on disk."""
        secret = self.secret_key.get_secret_value()
        return secret or development_secret(chatbot_home() / DEV_KEY_FILE)

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


def load_settings() -> Settings:
    """Settings for an entry point (CLI, uvicorn, Alembic): a bad configuration prints one
    line per problem and exits non-zero, instead of a traceback from deep inside a library."""
    try:
        settings = Settings()
        settings.signing_key  # noqa: B018 - checks (or creates) the development key now
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            print(f"configuration error: {where + ': ' if where else ''}{message}", file=sys.stderr)
        raise SystemExit(2) from None
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return settings
