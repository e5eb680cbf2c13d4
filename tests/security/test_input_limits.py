"""Hostile or heavy input costs no more than a limit (issue 6 §2)."""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from app.api.state import State
from app.documents.models import Document
from tests.conftest import AppFactory, login_headers, new_user, signup
from tests.security.pdfs import build_pdf

MB = 1024 * 1024


async def _document_count(state: State) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count(Document.id)))).scalar_one())


class Body:
    """A request body sent in 1 MB chunks with no Content-Length; counts what was pulled."""

    def __init__(self, prefix: bytes, chunks: int, suffix: bytes = b"") -> None:
        self.prefix, self.chunks, self.suffix = prefix, chunks, suffix
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.prefix
        for _ in range(self.chunks):
            self.sent += 1
            yield b"a" * MB
        yield self.suffix


async def test_huge_unauthenticated_json_body_is_413_after_its_limit(
    client: httpx.AsyncClient,
) -> None:
    """Reproduced: four unauthenticated 150 MB sign-ups took the process to 1.7 GB."""
    body = Body(b'{"email": "a@example.com", "password": "', 150, b'"}')
    response = await client.post(
        "/api/signup/", content=body.__aiter__(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert body.sent <= 1  # stopped within the first megabyte, 64 KB past the limit


async def test_declared_oversized_body_is_413_before_reading(client: httpx.AsyncClient) -> None:
    body = Body(b"{", 3)
    response = await client.post(
        "/api/login/",
        content=body.__aiter__(),
        headers={"Content-Type": "application/json", "Content-Length": str(150 * MB)},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert body.sent == 0


async def test_json_body_just_under_the_limit_is_parsed(app_factory: AppFactory) -> None:
    async with app_factory(max_json_body_bytes=4096) as (client, _):
        padding = "x" * 3000
        response = await client.post(
            "/api/login/", json={"email": "a@example.com", "password": "p", "pad": padding}
        )
        assert response.status_code == 401
        too_big = await client.post(
            "/api/login/", json={"email": "a@example.com", "password": "p", "pad": padding * 2}
        )
        assert too_big.status_code == 413


async def test_chunked_multipart_upload_is_stopped_at_the_upload_limit(
    app_factory: AppFactory,
) -> None:
    """Reproduced: 1,000 MB of a chunked upload were spooled to disk before the 413."""
    async with app_factory(max_upload_bytes=2 * MB) as (client, state):
        headers = await new_user(client)
        boundary = "xyzzy"
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        body = Body(head, 1000, f"\r\n--{boundary}--\r\n".encode())
        response = await client.post(
            "/api/documents/",
            content=body.__aiter__(),
            headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 413
        assert body.sent <= 3
        assert await _document_count(state) == 0


async def _upload_pdf(
    client: httpx.AsyncClient, headers: dict[str, str], data: bytes
) -> httpx.Response:
    return await client.post(
        "/api/documents/", files={"file": ("x.pdf", data, "application/pdf")}, headers=headers
    )


async def test_pdf_expanding_past_the_text_cap_is_413(app_factory: AppFactory) -> None:
    """Reproduced: a 6.9 KB PDF (pages sharing one content stream) made 26,456 chunks."""
    data = build_pdf(pages=300, repeat=60)
    assert len(data) < 64 * 1024
    async with app_factory(max_document_chars=100_000) as (client, state):
        response = await _upload_pdf(client, await new_user(client), data)
        assert response.status_code == 413
        assert "MAX_DOCUMENT_CHARS" in response.json()["detail"]
        assert await _document_count(state) == 0


async def test_pdf_with_too_many_pages_is_413(app_factory: AppFactory) -> None:
    async with app_factory(max_pdf_pages=10) as (client, _):
        response = await _upload_pdf(client, await new_user(client), build_pdf(pages=11))
        assert response.status_code == 413
        assert "MAX_PDF_PAGES" in response.json()["detail"]


async def test_document_with_too_many_chunks_is_413(app_factory: AppFactory) -> None:
    text = " ".join(f"Sentence number {n} is about the harbour." for n in range(200))
    async with app_factory(max_document_chunks=5, chunk_tokens=32, chunk_overlap_tokens=0) as (
        client,
        state,
    ):
        response = await client.post(
            "/api/documents/", json={"title": "t", "content": text}, headers=await new_user(client)
        )
        assert response.status_code == 413
        assert "MAX_DOCUMENT_CHUNKS" in response.json()["detail"]
        assert await _document_count(state) == 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(build_pdf(1, inflates_to=80 * MB), 413, id="flate-bomb"),
        pytest.param(build_pdf(1, stream_filter="JBIG2Decode"), 422, id="missing-dependency"),
        pytest.param(build_pdf(1, stream_filter="Foo"), 422, id="unknown-filter"),
        pytest.param(b"%PDF-1.4\n garbage", 422, id="garbage"),
    ],
)
async def test_unreadable_pdfs_are_4xx_not_500(
    client: httpx.AsyncClient, data: bytes, status: int
) -> None:
    response = await _upload_pdf(client, await new_user(client), data)
    assert response.status_code == status, response.text


async def test_pypdf_warnings_are_not_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken = build_pdf(pages=3).replace(b"startxref\n", b"startxref\n1", 1)
    with caplog.at_level(logging.WARNING):
        response = await _upload_pdf(client, await new_user(client), broken)
    assert response.status_code == 201, response.text
    assert [r for r in caplog.records if r.name.startswith("pypdf")] == []


async def test_document_quota_is_403(app_factory: AppFactory) -> None:
    async with app_factory(user_max_documents=2) as (client, _):
        headers = await new_user(client)
        for n in range(2):
            created = await client.post(
                "/api/documents/", json={"title": "t", "content": f"Fact {n}."}, headers=headers
            )
            assert created.status_code == 201
        third = await client.post(
            "/api/documents/", json={"title": "t", "content": "Fact 3."}, headers=headers
        )
        assert third.status_code == 403
        assert third.json()["error"] == "quota_exceeded"
        # Quotas are per user.
        other = await new_user(client, "other@example.com")
        assert (
            await client.post(
                "/api/documents/", json={"title": "t", "content": "Fact 3."}, headers=other
            )
        ).status_code == 201


async def test_chunk_quota_is_403(app_factory: AppFactory) -> None:
    text = " ".join(f"Sentence number {n} is about the harbour." for n in range(40))
    async with app_factory(user_max_chunks=3, chunk_tokens=32, chunk_overlap_tokens=0) as (
        client,
        _,
    ):
        response = await client.post(
            "/api/documents/", json={"title": "t", "content": text}, headers=await new_user(client)
        )
        assert response.status_code == 403
        assert "USER_MAX_CHUNKS" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/signup/", {"email": "a@example.com", "username": "a\x00b", "password": "p" * 10}),
        ("/api/signup/", {"email": "a\x00@example.com", "username": "a", "password": "p" * 10}),
        ("/api/login/", {"email": "a\x00@example.com", "password": "p" * 10}),
    ],
)
async def test_nul_in_account_fields_is_422(
    client: httpx.AsyncClient, path: str, body: dict[str, str]
) -> None:
    """Reproduced: a 500 on PostgreSQL, whose text type cannot hold NUL."""
    response = await client.post(path, json=body)
    assert response.status_code == 422


async def test_nul_in_oauth2_form_username_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/token/", data={"username": "a\x00@x.io", "password": "p"})
    assert response.status_code == 401


async def test_nul_in_chat_message_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post("/api/chat/", json={"message": "hi\x00there"}, headers=headers)
    assert response.status_code == 422


@pytest.mark.parametrize("field", ["title", "content"])
async def test_nul_in_json_document_is_422(client: httpx.AsyncClient, field: str) -> None:
    body = {"title": "Tea", "content": "Tea is brewed hot.", field: "bad\x00value"}
    response = await client.post("/api/documents/", json=body, headers=await new_user(client))
    assert response.status_code == 422


async def test_nul_in_text_upload_is_stripped(client: httpx.AsyncClient, state: State) -> None:
    response = await client.post(
        "/api/documents/",
        files={"file": ("n\x00ul.txt", b"Tea is\x00 brewed hot.", "text/plain")},
        headers=await new_user(client),
    )
    assert response.status_code == 201, response.text
    async with state["sessions"]() as session:
        document = await session.get(Document, response.json()["id"])
    assert document is not None
    assert document.content == "Tea is brewed hot."
    assert "\x00" not in (document.filename or "")


@pytest.mark.parametrize(
    ("signed_up", "logs_in"),
    [
        pytest.param(
            unicodedata.normalize("NFD", "josé@example.com"), "josé@example.com", id="nfd"
        ),
        pytest.param(
            "josé@example.com", unicodedata.normalize("NFD", "josé@example.com"), id="nfc"
        ),
        pytest.param("ada@xn--bcher-kva.example", "ada@bücher.example", id="punycode"),
        pytest.param("ada@bücher.example", "ADA@xn--bcher-kva.example", id="unicode-domain"),
    ],
)
async def test_email_is_normalized_alike_at_signup_and_login(
    client: httpx.AsyncClient, signed_up: str, logs_in: str
) -> None:
    """Reproduced: an NFD or punycode address signed up, then could not log in."""
    await signup(client, signed_up)
    assert await login_headers(client, logs_in)
    again = await client.post(
        "/api/signup/", json={"email": logs_in, "username": "x", "password": "correct horse 1"}
    )
    assert again.status_code == 409


async def test_same_file_uploaded_twice_is_one_document(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    files = {"file": ("tea.txt", b"Tea is brewed at 83 degrees.", "text/plain")}
    first = await client.post("/api/documents/", files=files, headers=headers)
    again = await client.post("/api/documents/", files=files, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert await _document_count(state) == 1
