from __future__ import annotations

import httpx

from tests.conftest import new_user


async def test_chat_with_document_answers_from_it(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    doc = await client.post(
        "/api/documents/",
        json={"title": "Lighthouse", "content": "The Korvath lighthouse was painted teal in 1911. "
              "Its keeper was Ilse Marren. Cats live in many houses."},
        headers=headers,
    )
    assert doc.status_code == 201, doc.text
    r = await client.post("/api/chat/", json={"message": "What color is the Korvath lighthouse?"},
                          headers=headers)
    assert r.status_code == 200, r.text
    print(r.json())
    assert "teal" in r.json()["response"]
