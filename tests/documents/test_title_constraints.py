"""Issue 22 follow-up: `StringConstraints` placed after a validator in `Annotated[...]` lose
`strip_whitespace` in pydantic, so a blank title (or user name) passed `min_length=1`. The
constraints now come first; blank, too long and NUL are a 422 and lose nothing."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import new_user

TEXT = "Employees receive 25 days of paid annual leave per calendar year."


@pytest.mark.parametrize("title", ["", "   ", "\t\n ", "a" * 301, "  " + "a" * 301, "a\x00b"])
async def test_create_document_bad_title_is_422_and_stores_nothing(
    client: httpx.AsyncClient, title: str
) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/", json={"title": title, "content": TEXT}, headers=headers
    )
    listed = await client.get("/api/documents/", headers=headers)

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert listed.json() == []


async def test_create_document_padded_title_is_stored_stripped(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/documents/", json={"title": "  Leave  ", "content": TEXT}, headers=headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Leave"


async def test_create_document_title_of_300_after_strip_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    title = "a" * 300
    response = await client.post(
        "/api/documents/", json={"title": f" {title} ", "content": TEXT}, headers=headers
    )

    assert response.status_code == 201, response.text
    assert response.json()["title"] == title


@pytest.mark.parametrize("username", ["", "   ", "a" * 151, "a\x00"])
async def test_signup_bad_username_is_422(client: httpx.AsyncClient, username: str) -> None:
    response = await client.post(
        "/api/signup/",
        json={"email": "ada@example.com", "username": username, "password": "correct horse 1"},
    )

    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


async def test_signup_padded_username_is_stored_stripped(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/signup/",
        json={"email": "ada@example.com", "username": "  ada  ", "password": "correct horse 1"},
    )

    assert response.status_code == 201, response.text
    assert response.json()["username"] == "ada"
