"""The value every authenticated request is reduced to: who calls, and with which credential."""

from __future__ import annotations

from dataclasses import dataclass

from app.auth.models import User


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request: the user, the API key the request carried (None for a JWT
    access token) and, for a collection-scoped key, the collections it is limited to
    (`collection_ids`; None: unrestricted). Resolved once per request by `app.api.principal`;
    routes, rate limits, `/v1` and MCP all take this value rather than decoding credentials
    themselves. What the caller may see in collections is computed from it per request
    (`app.collections.access`), never stored in it."""

    user: User
    key_id: int | None = None
    collection_ids: frozenset[int] | None = None
    # What an API key may do beyond its owner's own API ("admin"); empty for a login token,
    # whose owner's role alone decides.
    scopes: frozenset[str] = frozenset()

    @property
    def via_api_key(self) -> bool:
        return self.key_id is not None
