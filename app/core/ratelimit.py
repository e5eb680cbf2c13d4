"""The rate-limit engine (the `limits` library, moving windows of one minute): counters in
memory (per process) or in Redis (`RATE_LIMIT_STORAGE_URL=redis://...`, shared by every
replica), the trusted-proxy rule for the client's address, and `TooManyRequests`. The route
dependencies that decide what to count live in `app.api.ratelimits`."""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import logging
import math
import time
from typing import TYPE_CHECKING

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from starlette.requests import Request

from app.core import metrics
from app.core.config import Settings
from app.core.errors import AppError

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool

logger = logging.getLogger(__name__)

# After the store fails, limits are skipped this long before it is tried again.
STORE_RETRY_SECONDS = 5
# The memory store drops expired entries at most this often.
SWEEP_SECONDS = 1.0
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TooManyRequests(AppError):
    status_code = 429
    code = "too_many_requests"
    default_detail = "Too many requests; try again later."

    def __init__(self, detail: str | None = None, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class TrustedProxies:
    """The peers allowed to name the client in `X-Forwarded-For`, in uvicorn's
    `--forwarded-allow-ips` syntax: addresses, networks, or `*` for any."""

    def __init__(self, spec: str) -> None:
        items = [item.strip() for item in spec.split(",") if item.strip()]
        self.any = "*" in items
        self.networks: list[IpNetwork] = []
        self.literals: set[str] = set()  # non-IP peers, e.g. a unix socket's name
        for item in items:
            try:
                self.networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                self.literals.add(item)

    def __contains__(self, host: str) -> bool:
        if self.any or host in self.literals:
            return True
        address = _parse_ip(host)
        return address is not None and any(address in network for network in self.networks)


def _parse_ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def client_ip(request: Request, trusted: TrustedProxies) -> str:
    """The peer, or, when the peer is a trusted proxy, the nearest untrusted hop of
    `X-Forwarded-For` (the last address a trusted proxy appended): a client cannot choose its
    own address by sending the header itself."""
    peer = request.client.host if request.client else ""
    if peer not in trusted:
        return peer or "unknown"
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else peer or "unknown"


def account_key(email: str) -> str:
    """The counter key of a (normalized) email: the store (Redis) never holds an address."""
    # surrogatepass: text the edge did not refuse (a caller other than HTTP) still counts.
    return hashlib.sha256(email.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class SweptMemoryStorage(MemoryStorage):
    """limits' in-memory store, its expired entries swept inline at most every SWEEP_SECONDS.

    The library sweeps in `asyncio.to_thread`, key by key, holding the key's lock while it waits
    for a thread: with the default pool busy (PDF parsing, the local store), a chat's rate-limit
    check would wait behind that work. Trimming lists of at most `limit` entries needs no thread.
    Correctness never depends on the sweep (a check ignores entries older than the window)."""

    def __init__(self) -> None:
        super().__init__()
        self._swept_at = 0.0

    async def _MemoryStorage__schedule_expiry(self) -> None:  # noqa: N802 - the library's hook
        now = time.time()
        if now - self._swept_at >= SWEEP_SECONDS:
            self._swept_at = now
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Drop expired entries and counters (no await: nothing interleaves with it)."""
        for key in list(self.events):
            lock = self.locks.get(key)
            if lock is not None and lock.locked():
                continue
            entries = self.events[key]  # newest first
            kept = entries[: bisect.bisect_left(entries, -now, key=lambda entry: -entry.expiry)]
            if kept:
                self.events[key] = kept
            else:
                del self.events[key]
                self.locks.pop(key, None)
        for key, expires in list(self.expirations.items()):
            if expires <= now:
                self.storage.pop(key, None)
                self.expirations.pop(key, None)
                self.locks.pop(key, None)


class RateLimiter:
    """Moving-window counters in the configured store; `hit` refuses what exceeds a limit."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.trusted = TrustedProxies(settings.forwarded_allow_ips)
        self._pool: ConnectionPool | None = None
        self._store_down_until = 0.0
        self.storage: Storage = self._build_storage(settings)
        self.strategy = MovingWindowRateLimiter(self.storage)

    def _build_storage(self, settings: Settings) -> Storage:
        url = settings.rate_limit_storage_url
        if url.startswith(("redis://", "rediss://")):
            from redis.asyncio import ConnectionPool

            timeout = settings.rate_limit_storage_timeout_seconds
            # Our own pool, so that shutdown can close its connections.
            self._pool = ConnectionPool.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            return RedisStorage(
                "async+" + url.split("://", 1)[0] + "://",
                implementation="redispy",
                connection_pool=self._pool,  # type: ignore[arg-type]  # passed to redis.Redis
                key_prefix=settings.rate_limit_key_prefix,
                wrap_exceptions=True,
            )
        if url.startswith("memory://"):
            return SweptMemoryStorage()
        raise ValueError(
            "RATE_LIMIT_STORAGE_URL must be memory:// or redis://host:port/db (rediss:// for TLS)"
        )

    async def hit(self, limit: str, per_minute: int, key: str) -> None:
        """Count one request of `key` against `limit`; `TooManyRequests` past `per_minute`.
        A failing store lets requests through (an outage of Redis is not one of the API) and
        is not asked again for STORE_RETRY_SECONDS, so a black-holed Redis costs one timeout."""
        if not self.enabled or time.monotonic() < self._store_down_until:
            return
        item = RateLimitItemPerMinute(per_minute)
        try:
            if await self.strategy.hit(item, limit, key):
                return
            stats = await self.strategy.get_window_stats(item, limit, key)
        except StorageError as exc:
            self._store_down_until = time.monotonic() + STORE_RETRY_SECONDS
            metrics.RATE_LIMIT_STORAGE_ERRORS.inc()
            cause = type(getattr(exc, "storage_error", exc)).__name__
            logger.warning(
                "rate limit store failed (%s): requests let through for %d s",
                cause,
                STORE_RETRY_SECONDS,
            )
            return
        metrics.RATE_LIMITED.labels(limit=limit).inc()
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(
            f"Too many requests ({per_minute} per minute); retry in {retry_after} s.",
            retry_after=retry_after,
        )

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
