from __future__ import annotations

import io

import httpx
import pytest
from pypdf import PdfWriter
from sqlalchemy import func, select

from app.api.state import State
from app.rag.backends.local import VectorEntry
from tests.conftest import AppFactory, make_admin, new_user

TEXT = "Zorblax tea is brewed at exactly 83 degrees. It was first sold in Tallinn in 1890."


async def _vector_count(state: State) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count(VectorEntry.seq)))).scalar_one())


async def test_create_json_document_is_ready_with_chunks(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT}, headers=headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "ready"
    assert body["chunks"] == 1
    assert body["title"] == "Tea"
    assert await _vector_count(state) == 1


async def test_create_same_content_twice_is_idempotent(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    first = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT}, headers=headers
    )
    again = await client.post(
        "/api/documents/", json={"title": "Tea 2", "content": TEXT}, headers=headers
    )
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert await _vector_count(state) == 1


async def test_upload_markdown_file_uses_filename_as_title(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/",
        files={"file": ("notes.md", b"# Notes\n\n" + TEXT.encode(), "text/markdown")},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "notes.md"
    assert response.json()["content_type"] == "text/markdown"


async def test_upload_html_file_extracts_visible_text(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    html = f"<html><head><script>var secret=1;</script></head><body><p>{TEXT}</p></body></html>"
    response = await client.post(
        "/api/documents/",
        files={"file": ("page.html", html.encode(), "text/html")},
        data={"title": "Page"},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    answer = await client.post(
        "/api/chat/",
        json={"message": "At what temperature is Zorblax tea brewed?"},
        headers=headers,
    )
    assert "83 degrees" in answer.json()["response"]
    assert "secret" not in answer.json()["response"]


async def test_upload_pdf_without_text_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    response = await client.post(
        "/api/documents/",
        files={"file": ("blank.pdf", buffer.getvalue(), "application/pdf")},
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "The document contains no text."


async def test_upload_corrupt_pdf_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/",
        files={"file": ("broken.pdf", b"%PDF-1.7 this is not really a pdf", "application/pdf")},
        headers=headers,
    )
    assert response.status_code == 422


async def test_upload_unsupported_type_is_415(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/",
        files={"file": ("tool.exe", b"MZ...", "application/octet-stream")},
        headers=headers,
    )
    assert response.status_code == 415
    assert ".exe" in response.json()["detail"]


async def test_create_with_other_content_type_is_415(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/", content=TEXT, headers={**headers, "Content-Type": "text/plain"}
    )
    assert response.status_code == 415


async def test_upload_over_size_limit_is_413(app_factory: AppFactory) -> None:
    async with app_factory(max_upload_bytes=1000) as (client, _):
        headers = await new_user(client)
        big = b"word " * 400
        upload = await client.post(
            "/api/documents/", files={"file": ("big.txt", big, "text/plain")}, headers=headers
        )
        as_json = await client.post(
            "/api/documents/", json={"title": "big", "content": big.decode()}, headers=headers
        )
        assert upload.status_code == as_json.status_code == 413
        assert upload.json()["error"] == "payload_too_large"


async def test_upload_non_utf8_text_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/",
        files={"file": ("latin.txt", "café".encode("utf-16"), "text/plain")},
        headers=headers,
    )
    assert response.status_code == 422


async def test_create_json_blank_content_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/", json={"title": "x", "content": "  \n\t "}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "content"]


async def test_create_json_missing_content_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post("/api/documents/", json={"title": "x"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "content"]


async def test_documents_are_private_to_their_owner(client: httpx.AsyncClient) -> None:
    ada = await new_user(client, "ada@example.com")
    bob = await new_user(client, "bob@example.com")
    created = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT}, headers=ada
    )
    doc_id = created.json()["id"]
    assert (await client.get(f"/api/documents/{doc_id}/", headers=bob)).status_code == 404
    assert (await client.delete(f"/api/documents/{doc_id}/", headers=bob)).status_code == 404
    assert (await client.get("/api/documents/", headers=bob)).json() == []
    answer = await client.post(
        "/api/chat/", json={"message": "At what temperature is Zorblax tea brewed?"}, headers=bob
    )
    assert answer.json()["sources"] == []
    assert "83" not in answer.json()["response"]
    mine = await client.post(
        "/api/chat/", json={"message": "At what temperature is Zorblax tea brewed?"}, headers=ada
    )
    assert mine.json()["sources"][0]["document_id"] == doc_id


async def test_shared_document_requires_admin(client: httpx.AsyncClient, state: State) -> None:
    ada = await new_user(client, "ada@example.com")
    denied = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT, "shared": True}, headers=ada
    )
    assert denied.status_code == 403
    await make_admin(state, "ada@example.com")
    allowed = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT, "shared": True}, headers=ada
    )
    assert allowed.status_code == 201
    assert allowed.json()["shared"] is True


async def test_shared_document_is_retrieved_for_every_user(
    client: httpx.AsyncClient, state: State
) -> None:
    admin = await new_user(client, "admin@example.com")
    await make_admin(state, "admin@example.com")
    bob = await new_user(client, "bob@example.com")
    created = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT, "shared": True}, headers=admin
    )
    doc_id = created.json()["id"]
    listed = (await client.get("/api/documents/", headers=bob)).json()
    assert [d["id"] for d in listed] == [doc_id]
    answer = await client.post(
        "/api/chat/", json={"message": "Where was Zorblax tea first sold?"}, headers=bob
    )
    assert "Tallinn" in answer.json()["response"]
    assert (await client.delete(f"/api/documents/{doc_id}/", headers=bob)).status_code == 403


async def test_delete_document_removes_vectors_and_answers(
    client: httpx.AsyncClient, state: State
) -> None:
    headers = await new_user(client)
    created = await client.post(
        "/api/documents/", json={"title": "Tea", "content": TEXT}, headers=headers
    )
    doc_id = created.json()["id"]
    assert await _vector_count(state) == 1
    response = await client.delete(f"/api/documents/{doc_id}/", headers=headers)
    assert response.status_code == 204
    assert await _vector_count(state) == 0
    assert (await client.get(f"/api/documents/{doc_id}/", headers=headers)).status_code == 404
    answer = await client.post(
        "/api/chat/", json={"message": "Where was Zorblax tea first sold?"}, headers=headers
    )
    assert answer.json()["sources"] == []


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_document_id_out_of_range_is_422(client: httpx.AsyncClient, method: str) -> None:
    headers = await new_user(client)
    response = await client.request(method, f"/api/documents/{2**70}/", headers=headers)
    assert response.status_code == 422


@pytest.mark.parametrize("path", ["/api/documents/", "/api/documents/1/"])
async def test_documents_without_token_is_401(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 401


async def test_large_document_is_processed_in_background(app_factory: AppFactory) -> None:
    async with app_factory(ingest_inline_max_chunks=2, chunk_tokens=40, chunk_overlap_tokens=8) as (
        client,
        state,
    ):
        headers = await new_user(client)
        content = " ".join(
            f"Fact number {n} is that item {n} weighs {n * 3} grams." for n in range(60)
        )
        response = await client.post(
            "/api/documents/", json={"title": "Facts", "content": content}, headers=headers
        )
        assert response.status_code == 201
        assert response.json()["status"] == "processing"
        await state["documents"].wait_idle()
        done = await client.get(f"/api/documents/{response.json()['id']}/", headers=headers)
        assert done.json()["status"] == "ready"
        assert done.json()["chunks"] == await _vector_count(state) > 2
