"""Logging set-up shared by the app and the CLI."""

from __future__ import annotations

import logging

# Loggers whose DEBUG records carry bound SQL values (passwords' hashes, emails, chat and
# document text): never below INFO, whatever LOG_LEVEL says.
_CHATTY = ("aiosqlite", "sqlalchemy.engine", "asyncpg")


def configure_logging(level: str, fmt: str | None = None) -> None:
    logging.basicConfig(level=level.upper(), format=fmt or logging.BASIC_FORMAT)
    for name in _CHATTY:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
