"""`DELETE /api/admin/users/{id}/` on Pinecone: the user's vectors go, the others' stay."""

from __future__ import annotations

from typing import Any

import httpx

from tests.admin.conftest import admin_headers
from tests.conftest import new_user
from tests.fakes.pinecone import FakePinecone
from tests.rag.test_remote_api import hf, hf_server, pinecone, pinecone_server, remote

__all__ = ["hf", "hf_server", "pinecone", "pinecone_server", "remote"]


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> int:
    response = await client.post("/api/documents/", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_admin_delete_user_on_pinecone_deletes_only_their_vectors(
    remote: Any, pinecone: FakePinecone
) -> None:
    async with remote() as (client, state):
        admin = await admin_headers(client, state, "admin@example.com")
        keeper = await new_user(client, "keeper@example.com")
        kept = await _upload(client, keeper, title="Other", content="Tallinn has a harbour.")
        user = await new_user(client)
        uid = (await client.get("/api/me/", headers=user)).json()["id"]
        gone = await _upload(
            client, user, title="Vault", content="The vault code is kept under Lake Varnis."
        )
        stored = {v.metadata["document_id"] for v in pinecone.vectors().values()}
        assert stored == {kept, gone}

        response = await client.delete(f"/api/admin/users/{uid}/", headers=admin)

        assert response.status_code == 204, response.text
        assert {v.metadata["document_id"] for v in pinecone.vectors().values()} == {kept}
