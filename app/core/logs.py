"""Logging set-up shared by the app and the CLI: plain lines by default, one JSON object per
line with `LOG_FORMAT=json`; both carry the request id (app/core/requestid.py)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import IO, Any

from app.core.requestid import current_request_id

# Loggers whose DEBUG records carry bound SQL values (passwords' hashes, emails, chat and
# document text): never below INFO, whatever LOG_LEVEL says.
_CHATTY = ("aiosqlite", "sqlalchemy.engine", "asyncpg")
# uvicorn's loggers have handlers of their own; in JSON mode they go through ours instead.
_UVICORN = ("uvicorn", "uvicorn.error", "uvicorn.access")
PLAIN_FORMAT = "%(levelname)s %(name)s [%(request_id)s]: %(message)s"
HANDLER_NAME = "ragchat"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record the handler emits ("-" outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": None if request_id in (None, "-") else request_id,
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def build_handler(
    log_format: str = "plain", fmt: str | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """The handler `configure_logging` installs (also used by tests, on their own stream)."""
    handler = logging.StreamHandler(stream)
    handler.name = HANDLER_NAME
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(fmt or PLAIN_FORMAT))
    return handler


def configure_logging(level: str, fmt: str | None = None, log_format: str = "plain") -> None:
    """Configure the root logger once per process (like `logging.basicConfig`: a process whose
    root logger already has handlers keeps them)."""
    logging.basicConfig(level=level.upper(), handlers=[build_handler(log_format, fmt)])
    if log_format == "json":
        for name in _UVICORN:
            logger = logging.getLogger(name)
            logger.handlers.clear()
            logger.propagate = True
    for name in _CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
