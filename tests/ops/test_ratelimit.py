"""Rate limits: brute force on login and token endpoints (per IP, per account), per user on
chat and uploads whichever credential, 429 shapes, proxy headers, Redis shared by replicas."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from pydantic import ValidationError
from starlette.requests import Request

from app.core.config import Settings
from app.core.ratelimit import (
    RateLimiter,
    SweptMemoryStorage,
    TooManyRequests,
    TrustedProxies,
    client_ip,
)
from tests.ops.conftest import AppClientFactory, PeerAppFactory, bearer, signup_login

PASSWORD = "correct horse 1"
LIMITS_ON = {"rate_limit_enabled": True}


def assert_too_many(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"] == "too_many_requests"
    assert 1 <= int(response.headers["Retry-After"]) <= 60


async def wrong_login(client: httpx.AsyncClient, email: str = "ada@example.com") -> int:
    response = await client.post("/api/login/", json={"email": email, "password": "wrong" * 3})
    return response.status_code


async def test_login_30_wrong_then_right_password_right_one_refused(
    app_client: AppClientFactory,
) -> None:
    async with app_client(**LIMITS_ON, rate_limit_login_per_account_per_minute=10) as client:
        await signup_login(client)  # the successful login counts too
        statuses = [await wrong_login(client) for _ in range(30)]
        right = await client.post(
            "/api/login/", json={"email": "ada@example.com", "password": PASSWORD}
        )

    assert statuses.count(401) == 9  # 10 per minute, the sign-up's login included
    assert statuses.count(429) == 21
    assert_too_many(right)


async def test_login_account_limit_spelling_of_email_shares_the_count(
    app_client: AppClientFactory,
) -> None:
    async with app_client(**LIMITS_ON, rate_limit_login_per_account_per_minute=2) as client:
        first = await wrong_login(client, "Ada@Example.com")
        second = await wrong_login(client, " ada@EXAMPLE.com ")
        third = await wrong_login(client, "ada@example.com")

    assert (first, second, third) == (401, 401, 429)


async def test_login_account_limit_other_ips_still_refused(peer_app: PeerAppFactory) -> None:
    async with peer_app(**LIMITS_ON, rate_limit_login_per_account_per_minute=3) as running:
        statuses = []
        for n in range(6):  # an attacker rotating addresses
            async with running.client(f"198.51.100.{n + 1}") as client:
                statuses.append(await wrong_login(client))

    assert statuses == [401, 401, 401, 429, 429, 429]


async def test_login_ip_limit_many_accounts_refused_with_error_shape(
    peer_app: PeerAppFactory,
) -> None:
    async with peer_app(**LIMITS_ON, rate_limit_login_per_ip_per_minute=3) as running:
        async with running.client("203.0.113.9") as attacker:
            statuses = [await wrong_login(attacker, f"user{n}@example.com") for n in range(3)]
            refused = await attacker.post(
                "/api/login/", json={"email": "user9@example.com", "password": "x" * 12}
            )
        async with running.client("203.0.113.10") as other:
            other_status = await wrong_login(other, "user0@example.com")

    assert statuses == [401, 401, 401]
    assert_too_many(refused)
    assert set(refused.json()) == {"error", "detail"}
    assert other_status == 401  # another client's address has its own count


async def test_token_form_counts_per_account(app_client: AppClientFactory) -> None:
    async with app_client(**LIMITS_ON, rate_limit_login_per_account_per_minute=2) as client:
        form = {"username": "ada@example.com", "password": "wrong-password"}
        statuses = [(await client.post("/api/token/", data=form)).status_code for _ in range(3)]
        # The JSON login names the same account: the same count.
        json_login = await wrong_login(client)

    assert statuses == [401, 401, 429]
    assert json_login == 429


async def test_refresh_per_account_limit_across_ips(peer_app: PeerAppFactory) -> None:
    async with peer_app(**LIMITS_ON, rate_limit_login_per_account_per_minute=2) as running:
        async with running.client("192.0.2.1") as client:
            refresh = (await signup_login(client))["refresh"]
        statuses = []
        for n in range(3):  # each refresh from another address, as a thief might
            async with running.client(f"192.0.2.{n + 2}") as client:
                response = await client.post("/api/token/refresh/", json={"refresh": refresh})
            statuses.append(response.status_code)
            if response.status_code == 200:
                refresh = response.json()["refresh"]

    assert statuses == [200, 200, 429]


async def test_forwarded_for_from_untrusted_peer_is_ignored(app_client: AppClientFactory) -> None:
    async with app_client(
        "203.0.113.50", **LIMITS_ON, rate_limit_login_per_ip_per_minute=2
    ) as client:
        statuses = [
            (
                await client.post(
                    "/api/login/",
                    json={"email": f"u{n}@example.com", "password": "x" * 12},
                    headers={"X-Forwarded-For": f"10.9.8.{n}"},  # spoofed, new each time
                )
            ).status_code
            for n in range(4)
        ]

    assert statuses == [401, 401, 429, 429]


async def test_forwarded_for_from_trusted_proxy_names_the_client(
    peer_app: PeerAppFactory,
) -> None:
    async with (
        peer_app(
            **LIMITS_ON, rate_limit_login_per_ip_per_minute=2, forwarded_allow_ips="10.0.0.0/8"
        ) as running,
        running.client("10.0.0.2") as proxy,
    ):

        async def login_as(forwarded_for: str, n: int) -> int:
            response = await proxy.post(
                "/api/login/",
                json={"email": f"u{n}@example.com", "password": "x" * 12},
                headers={"X-Forwarded-For": forwarded_for},
            )
            return response.status_code

        # The client puts a fake first hop; the proxy appends the real address.
        client_a = [await login_as(f"1.2.3.{n}, 198.51.100.7", n) for n in range(3)]
        client_b = await login_as("198.51.100.8", 9)

    assert client_a == [401, 401, 429]
    assert client_b == 401


def _request(peer: str, forwarded_for: str | None) -> Request:
    headers = [(b"x-forwarded-for", forwarded_for.encode())] if forwarded_for else []
    return Request({"type": "http", "client": (peer, 1), "headers": headers})


@pytest.mark.parametrize(
    ("spec", "peer", "forwarded_for", "expected"),
    [
        ("127.0.0.1", "127.0.0.1", "198.51.100.1", "198.51.100.1"),
        ("127.0.0.1", "203.0.113.1", "198.51.100.1", "203.0.113.1"),
        ("127.0.0.1", "127.0.0.1", None, "127.0.0.1"),
        # Two trusted proxies in a row: the first untrusted hop from the right.
        ("127.0.0.1, 10.0.0.0/8", "127.0.0.1", "6.6.6.6, 198.51.100.2, 10.1.2.3", "198.51.100.2"),
        ("10.0.0.0/8", "10.0.0.1", "10.0.0.5", "10.0.0.5"),  # every hop trusted: the first
        ("*", "192.0.2.200", "2001:db8::1", "2001:db8::1"),
        ("::1", "::1", "2001:db8::2", "2001:db8::2"),
        ("127.0.0.1", "::1", "198.51.100.3", "::1"),
    ],
)
def test_client_ip_trusted_proxies_first_untrusted_hop(
    spec: str, peer: str, forwarded_for: str | None, expected: str
) -> None:
    assert client_ip(_request(peer, forwarded_for), TrustedProxies(spec)) == expected


async def test_chat_limit_shared_by_jwt_and_api_key_on_api_and_v1(
    app_client: AppClientFactory,
) -> None:
    async with app_client(**LIMITS_ON, rate_limit_chat_per_minute=3) as client:
        tokens = await signup_login(client)
        jwt = bearer(tokens["access"])
        created = await client.post("/api/keys/", json={"name": "laptop"}, headers=jwt)
        api_key = bearer(created.json()["key"])
        completion = {"model": "rag", "messages": [{"role": "user", "content": "hello?"}]}
        first = await client.post("/api/chat/", json={"message": "hello?"}, headers=jwt)
        second = await client.post("/api/chat/", json={"message": "hi?"}, headers=api_key)
        third = await client.post("/v1/chat/completions", json=completion, headers=api_key)
        fourth = await client.post("/api/chat/stream/", json={"message": "x"}, headers=jwt)
        fifth = await client.post("/v1/chat/completions", json=completion, headers=jwt)
        other = await signup_login(client, "bob@example.com")
        bob = await client.post(
            "/api/chat/", json={"message": "hello?"}, headers=bearer(other["access"])
        )

    assert [first.status_code, second.status_code, third.status_code] == [200, 200, 200]
    assert_too_many(fourth)
    # Under /v1, OpenAI's error shape, which the SDKs turn into RateLimitError.
    assert fifth.status_code == 429
    assert fifth.json()["error"]["type"] == "rate_limit_error"
    assert fifth.json()["error"]["code"] == "too_many_requests"
    assert 1 <= int(fifth.headers["Retry-After"]) <= 60
    assert bob.status_code == 200


async def test_chat_limit_unauthenticated_is_401_not_counted(app_client: AppClientFactory) -> None:
    async with app_client(**LIMITS_ON, rate_limit_chat_per_minute=1) as client:
        anonymous = [
            (await client.post("/api/chat/", json={"message": "hi"})).status_code for _ in range(3)
        ]
        tokens = await signup_login(client)
        mine = await client.post(
            "/api/chat/", json={"message": "hi"}, headers=bearer(tokens["access"])
        )

    assert anonymous == [401, 401, 401]
    assert mine.status_code == 200


async def test_upload_limit_per_user(app_client: AppClientFactory) -> None:
    async with app_client(**LIMITS_ON, rate_limit_upload_per_minute=2) as client:
        ada = bearer((await signup_login(client))["access"])
        bob = bearer((await signup_login(client, "bob@example.com"))["access"])
        statuses = []
        for n in range(3):
            body = {"title": f"Doc {n}", "content": f"Note number {n} about the garden."}
            response = await client.post("/api/documents/", json=body, headers=ada)
            statuses.append(response.status_code)
        files = {"file": ("note.txt", b"The shed is green.", "text/plain")}
        multipart = await client.post("/api/documents/", files=files, headers=ada)
        bobs = await client.post(
            "/api/documents/", json={"title": "B", "content": "Bob's note."}, headers=bob
        )
        listing = await client.get("/api/documents/", headers=ada)

    assert statuses == [201, 201, 429]
    assert_too_many(multipart)
    assert bobs.status_code == 201
    assert listing.status_code == 200  # reads are not limited
    assert len(listing.json()) == 2


async def test_rate_limit_disabled_nothing_refused(peer_app: PeerAppFactory) -> None:
    async with (
        peer_app(
            rate_limit_enabled=False,
            rate_limit_login_per_account_per_minute=1,
            rate_limit_login_per_ip_per_minute=1,
        ) as running,
        running.client() as client,
    ):
        statuses = {await wrong_login(client) for _ in range(5)}

    assert statuses == {401}


async def test_too_many_requests_cors_exposes_retry_after_and_request_id(
    peer_app: PeerAppFactory,
) -> None:
    origin = "https://app.example.com"
    async with (
        peer_app(
            **LIMITS_ON, rate_limit_login_per_account_per_minute=1, cors_origins=[origin]
        ) as running,
        running.client() as client,
    ):
        await wrong_login(client)
        refused = await client.post(
            "/api/login/",
            json={"email": "ada@example.com", "password": "x" * 12},
            headers={"Origin": origin},
        )

    assert_too_many(refused)
    assert refused.headers["access-control-allow-origin"] == origin
    exposed = {
        h.strip().lower() for h in refused.headers["access-control-expose-headers"].split(",")
    }
    assert {"retry-after", "x-request-id"} <= set(exposed)
    assert re.fullmatch(r"[0-9a-f]{32}", refused.headers["x-request-id"])


async def test_two_apps_sharing_redis_share_counts(
    peer_app: PeerAppFactory, redis_url: str, key_prefix: str
) -> None:
    shared = {
        **LIMITS_ON,
        "rate_limit_storage_url": redis_url,
        "rate_limit_key_prefix": key_prefix,
        "rate_limit_login_per_account_per_minute": 3,
    }
    async with (
        peer_app(**shared) as replica_a,
        peer_app(**shared) as replica_b,
        replica_a.client() as a,
        replica_b.client() as b,
    ):
        statuses = [await wrong_login(a), await wrong_login(b), await wrong_login(a)]
        from_b = await b.post("/api/login/", json={"email": "ada@example.com", "password": "p"})
        from_a = await a.post("/api/login/", json={"email": "ada@example.com", "password": "p"})

    assert statuses == [401, 401, 401]
    assert_too_many(from_b)
    assert_too_many(from_a)


async def test_redis_prefixes_keep_counts_apart(
    app_client: AppClientFactory, redis_url: str, key_prefix: str
) -> None:
    common = {**LIMITS_ON, "rate_limit_storage_url": redis_url}
    one = {**common, "rate_limit_key_prefix": key_prefix + "-one"}
    two = {**common, "rate_limit_key_prefix": key_prefix + "-two"}
    async with app_client(**one, rate_limit_login_per_account_per_minute=1) as client:
        first = [await wrong_login(client), await wrong_login(client)]
    async with app_client(**two, rate_limit_login_per_account_per_minute=1) as client:
        second = await wrong_login(client)

    assert first == [401, 429]
    assert second == 401


async def test_redis_unreachable_requests_let_through(
    app_client: AppClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    async with app_client(
        **LIMITS_ON,
        rate_limit_storage_url="redis://127.0.0.1:9/0",  # nothing listens on the discard port
        rate_limit_login_per_account_per_minute=1,
    ) as client:
        statuses = [await wrong_login(client) for _ in range(3)]
        tokens = await signup_login(client, "bob@example.com")

    assert statuses == [401, 401, 401]
    assert tokens["access"]
    failures = [r for r in caplog.records if r.name == "app.core.ratelimit"]
    # Logged once: the store is left alone for a while after it failed.
    assert [r.getMessage() for r in failures] == [
        "rate limit store failed (ConnectionError): requests let through for 5 s"
    ]


async def test_redis_black_holed_costs_one_timeout_then_skipped(
    app_client: AppClientFactory,
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def swallow(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts, never answers: a firewalled Redis

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    try:
        async with app_client(
            **LIMITS_ON,
            rate_limit_storage_url=f"redis://127.0.0.1:{port}/0",
            rate_limit_storage_timeout_seconds=0.3,
        ) as client:
            timings = []
            for _ in range(4):
                started = time.monotonic()
                assert await wrong_login(client) == 401
                timings.append(time.monotonic() - started)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()

    assert timings[0] >= 0.3  # the one call that waited for Redis
    assert max(timings[1:]) < 0.3  # the next ones did not ask it


async def test_openapi_documents_429_on_limited_routes_only(app_client: AppClientFactory) -> None:
    async with app_client() as client:
        paths = (await client.get("/openapi.json")).json()["paths"]

    limited = [
        ("post", "/api/login/"),
        ("post", "/api/token/"),
        ("post", "/api/token/refresh/"),
        ("post", "/api/chat/"),
        ("post", "/api/chat/stream/"),
        ("post", "/api/documents/"),
        ("post", "/v1/chat/completions"),
    ]
    for method, path in limited:
        assert "429" in paths[path][method]["responses"], path
    assert "429" not in paths["/api/signup/"]["post"]["responses"]
    assert "429" not in paths["/api/documents/"]["get"]["responses"]


def test_settings_unknown_rate_limit_storage_refused_in_one_line() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None, rate_limit_storage_url="mongodb://127.0.0.1/limits")

    (error,) = caught.value.errors()
    assert error["loc"] == ("rate_limit_storage_url",)
    assert "must be memory:// or redis://host:port/db" in error["msg"]


async def test_memory_store_sweeps_inline_no_thread_and_forgets_old_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_thread(*_: object, **__: object) -> None:
        raise AssertionError("the memory store must not wait for a thread")

    clock = [1_000_000.0]
    monkeypatch.setattr(asyncio, "to_thread", no_thread)
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limiter = RateLimiter(Settings(_env_file=None))
    storage = limiter.storage
    assert isinstance(storage, SweptMemoryStorage)
    for n in range(50):
        await limiter.hit("chat", 2, f"user:{n}")
    await limiter.hit("chat", 2, "user:0")
    with pytest.raises(TooManyRequests):
        await limiter.hit("chat", 2, "user:0")
    assert len(storage.events) == 50

    clock[0] += 61  # the window has passed for every key
    await limiter.hit("chat", 2, "user:7")

    (remaining,) = storage.events  # the other 49 keys were swept
    assert "user:7" in remaining
    await limiter.hit("chat", 2, "user:0")  # its old entries no longer count
    await limiter.aclose()
