"""API key material: generation, the keyed hash that is stored, and the pepper behind it.

Keys carry 32 random bytes, so a fast keyed hash (HMAC-SHA256) is enough: brute force is out of
reach and a slow password hash would only cost every request time. The pepper lives outside the
database, so a leaked `api_keys` table alone cannot be checked against guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from app.core.config import Settings

KEY_PREFIX = "sk-"
KEY_BYTES = 32
# Shown in listings so a user can tell keys apart; 7 random characters reveal ~42 of 256 bits.
DISPLAY_PREFIX_CHARS = len(KEY_PREFIX) + 7
# "sk-" plus urlsafe base64 of 32 bytes is 46 characters; anything far longer is not ours.
MAX_KEY_CHARS = 128


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_CHARS]


def derive_pepper(settings: Settings) -> bytes:
    """API_KEY_PEPPER when set, else a key derived from the app's signing key (never the
    signing key itself, so the JWT key and the key hashes stay independent)."""
    if settings.api_key_pepper is not None:
        configured = settings.api_key_pepper.get_secret_value().strip()
        if configured:
            return configured.encode()
    return hmac.new(settings.signing_key.encode(), b"api-key-pepper", hashlib.sha256).digest()


def hash_key(key: str, pepper: bytes) -> str:
    return hmac.new(pepper, key.encode(), hashlib.sha256).hexdigest()
