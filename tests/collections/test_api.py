"""Collections through the REST API: shapes, roles, documents in a collection, chat scoped
to collections, collection-scoped keys and /v1 models, deletion and account deletion."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select, text

from app.api.state import State
from app.collections.models import Collection
from app.collections.service import CollectionService
from app.documents.models import Document
from app.rag.backends.local import VectorEntry
from app.rag.lexical import LexicalChunk
from tests.collections.conftest import Team
from tests.conftest import new_user

RUNBOOK = "The payments database failover is started with the command pgswitch promote."
HANDBOOK = "Every employee receives twenty eight days of paid annual leave each year."
PRIVATE = "My private note: the payments database failover rehearsal is on Friday."


async def _count(state: State, column: Any, *where: Any) -> int:
    async with state["sessions"]() as session:
        query = select(func.count(column))
        for condition in where:
            query = query.where(condition)
        return int((await session.execute(query)).scalar_one())


async def _chat(team: Team, who: str, **body: Any) -> httpx.Response:
    return await team.client.post(
        "/api/chat/",
        json={"message": "How is the payments database failover started?", **body},
        headers=team.headers[who],
    )


def _cited(response: httpx.Response) -> set[int]:
    assert response.status_code == 200, response.text
    return {source["document_id"] for source in response.json()["sources"]}


async def test_create_collection_returns_owner_role_and_counts(
    client: httpx.AsyncClient,
) -> None:
    headers = await new_user(client)
    response = await client.post(
        "/api/collections/",
        json={"name": "  Board minutes ", "description": "Four people"},
        headers=headers,
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "description", "role", "created_at", "documents", "members"}
    assert (body["name"], body["description"], body["role"]) == (
        "Board minutes",
        "Four people",
        "owner",
    )
    assert (body["documents"], body["members"]) == (0, 1)


async def test_create_collection_blank_name_is_422(client: httpx.AsyncClient) -> None:
    headers = await new_user(client)
    response = await client.post("/api/collections/", json={"name": "  "}, headers=headers)
    assert response.status_code == 422


async def test_list_collections_member_sees_own_role_outsider_sees_none(team: Team) -> None:
    await team.add_document("editor", "Runbook", RUNBOOK, collection_id=team.collection_id)
    listed = {
        who: (await team.client.get("/api/collections/", headers=team.headers[who])).json()
        for who in ("owner", "viewer", "outsider", "admin")
    }
    assert [(c["role"], c["documents"], c["members"]) for c in listed["viewer"]] == [
        ("viewer", 1, 3)
    ]
    assert listed["owner"][0]["role"] == "owner"
    assert listed["outsider"] == []
    assert listed["admin"] == []


async def test_get_collection_outsider_and_admin_get_404(team: Team) -> None:
    for who in ("outsider", "admin"):
        response = await team.client.get(
            f"/api/collections/{team.collection_id}/", headers=team.headers[who]
        )
        assert response.status_code == 404
        assert response.json()["error"] == "collection_not_found"
    missing = await team.client.get("/api/collections/999999/", headers=team.headers["outsider"])
    assert missing.json() == response.json()  # an unknown id answers the same


async def test_add_member_unknown_email_is_404_and_existing_member_409(team: Team) -> None:
    url = f"/api/collections/{team.collection_id}/members/"
    unknown = await team.client.post(
        url, json={"email": "nobody@example.com", "role": "viewer"}, headers=team.headers["owner"]
    )
    again = await team.client.post(
        url, json={"email": "VIEWER@example.com", "role": "editor"}, headers=team.headers["owner"]
    )
    assert (unknown.status_code, unknown.json()["error"]) == (404, "user_not_found")
    assert (again.status_code, again.json()["error"]) == (409, "already_member")


async def test_change_role_of_last_owner_is_409_until_another_owner_exists(team: Team) -> None:
    owner_id = team.user_ids["owner"]
    base = f"/api/collections/{team.collection_id}/members/"
    demote = await team.client.patch(
        f"{base}{owner_id}/", json={"role": "viewer"}, headers=team.headers["owner"]
    )
    leave = await team.client.delete(f"{base}{owner_id}/", headers=team.headers["owner"])
    assert (demote.status_code, demote.json()["error"]) == (409, "last_owner")
    assert (leave.status_code, leave.json()["error"]) == (409, "last_owner")

    promoted = await team.client.patch(
        f"{base}{team.user_ids['editor']}/", json={"role": "owner"}, headers=team.headers["owner"]
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "owner"
    left = await team.client.delete(f"{base}{owner_id}/", headers=team.headers["owner"])
    assert left.status_code == 204
    gone = await team.client.get(
        f"/api/collections/{team.collection_id}/", headers=team.headers["owner"]
    )
    assert gone.status_code == 404


async def test_remove_member_viewer_removing_other_is_403_leaving_is_204(team: Team) -> None:
    base = f"/api/collections/{team.collection_id}/members/"
    other = await team.client.delete(
        f"{base}{team.user_ids['editor']}/", headers=team.headers["viewer"]
    )
    leave = await team.client.delete(
        f"{base}{team.user_ids['viewer']}/", headers=team.headers["viewer"]
    )
    assert other.status_code == 403
    assert leave.status_code == 204
    members = await team.client.get(base, headers=team.headers["owner"])
    assert {m["role"] for m in members.json()} == {"owner", "editor"}


async def test_upload_multipart_with_collection_id_adds_to_collection(team: Team) -> None:
    response = await team.client.post(
        "/api/documents/",
        files={"file": ("runbook.txt", RUNBOOK.encode(), "text/plain")},
        data={"collection_id": str(team.collection_id)},
        headers=team.headers["editor"],
    )
    assert response.status_code == 201, response.text
    assert response.json()["collection_id"] == team.collection_id
    bad = await team.client.post(
        "/api/documents/",
        files={"file": ("runbook.txt", RUNBOOK.encode(), "text/plain")},
        data={"collection_id": "first"},
        headers=team.headers["editor"],
    )
    assert bad.status_code == 422


async def test_collection_document_every_member_reads_outsider_gets_404(team: Team) -> None:
    document = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    statuses = {
        who: (
            await team.client.get(f"/api/documents/{document['id']}/", headers=team.headers[who])
        ).status_code
        for who in ("owner", "editor", "viewer", "outsider", "admin")
    }
    assert statuses == {"owner": 200, "editor": 200, "viewer": 200, "outsider": 404, "admin": 404}
    listed = await team.client.get(
        "/api/documents/",
        params={"collection_id": team.collection_id},
        headers=team.headers["viewer"],
    )
    assert [d["id"] for d in listed.json()] == [document["id"]]
    hidden = await team.client.get(
        "/api/documents/",
        params={"collection_id": team.collection_id},
        headers=team.headers["outsider"],
    )
    assert hidden.status_code == 404


async def test_same_content_privately_and_in_collection_is_two_documents(team: Team) -> None:
    private = await team.add_document("editor", "Mine", RUNBOOK)
    shared = await team.add_document("editor", "Team", RUNBOOK, collection_id=team.collection_id)
    assert private["id"] != shared["id"]
    assert private["collection_id"] is None


async def test_chat_collection_ids_narrows_retrieval_to_the_collection(team: Team) -> None:
    in_collection = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    private = await team.add_document("viewer", "Note", PRIVATE)

    everything = _cited(await _chat(team, "viewer"))
    narrowed = _cited(await _chat(team, "viewer", collection_ids=[team.collection_id]))

    assert {in_collection["id"], private["id"]} <= everything
    assert narrowed == {in_collection["id"]}


async def test_chat_collection_of_others_is_404_and_stores_nothing(team: Team) -> None:
    other = await team.client.post(
        "/api/collections/", json={"name": "Board"}, headers=team.headers["outsider"]
    )
    response = await _chat(team, "viewer", collection_ids=[other.json()["id"]])
    stream = await team.client.post(
        "/api/chat/stream/",
        json={"message": "hello", "collection_ids": [other.json()["id"]]},
        headers=team.headers["viewer"],
    )
    assert response.status_code == 404
    assert stream.status_code == 404
    history = await team.client.get("/api/chat-history/", headers=team.headers["viewer"])
    assert history.json() == []


async def test_removed_member_next_request_no_longer_cites_collection(team: Team) -> None:
    document = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    assert document["id"] in _cited(await _chat(team, "viewer"))
    removed = await team.client.delete(
        f"/api/collections/{team.collection_id}/members/{team.user_ids['viewer']}/",
        headers=team.headers["owner"],
    )
    assert removed.status_code == 204
    assert document["id"] not in _cited(await _chat(team, "viewer"))
    read = await team.client.get(
        f"/api/documents/{document['id']}/", headers=team.headers["viewer"]
    )
    assert read.status_code == 404


async def test_delete_collection_removes_documents_vectors_and_lexical_rows(team: Team) -> None:
    document = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    kept = await team.add_document("editor", "Handbook", HANDBOOK)
    by_editor = await team.client.delete(
        f"/api/collections/{team.collection_id}/", headers=team.headers["editor"]
    )
    deleted = await team.client.delete(
        f"/api/collections/{team.collection_id}/", headers=team.headers["owner"]
    )
    assert by_editor.status_code == 403
    assert deleted.status_code == 204
    state = team.state
    assert await _count(state, Document.id, Document.id == document["id"]) == 0
    assert await _count(state, VectorEntry.seq, VectorEntry.document_id == document["id"]) == 0
    assert await _count(state, LexicalChunk.id, LexicalChunk.document_id == document["id"]) == 0
    assert await _count(state, VectorEntry.seq, VectorEntry.document_id == kept["id"]) == 1
    assert await _count(state, Collection.id) == 0


async def test_recover_finishes_collection_deletion_interrupted_after_marking(
    team: Team,
) -> None:
    document = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    state = team.state
    # A crash right after step one: the collection and its document are marked, nothing gone.
    async with state["sessions"].begin() as session:
        await session.execute(text("UPDATE collections SET deleting = :yes"), {"yes": True})
        await session.execute(text("UPDATE documents SET status = 'deleting'"))
    assert _cited(await _chat(team, "viewer")) == set()
    listed = await team.client.get("/api/collections/", headers=team.headers["owner"])
    assert listed.json() == []

    await state["documents"].recover()
    finished = await CollectionService(
        state["sessions"], state["documents"], max_per_user=10, max_members=10
    ).recover()

    assert finished == 1
    assert await _count(state, Collection.id) == 0
    assert await _count(state, VectorEntry.seq, VectorEntry.document_id == document["id"]) == 0


async def test_models_list_rag_and_one_model_per_own_collection(team: Team) -> None:
    other = await team.client.post(
        "/api/collections/", json={"name": "Board"}, headers=team.headers["outsider"]
    )
    models = await team.client.get("/v1/models", headers=team.headers["viewer"])
    ids = [m["id"] for m in models.json()["data"]]
    assert ids == ["rag", f"rag:{team.collection_id}", "rag-embedding"]
    probe = await team.client.get(
        f"/v1/models/rag:{other.json()['id']}", headers=team.headers["viewer"]
    )
    assert probe.status_code == 404
    assert probe.json()["error"]["code"] == "model_not_found"


async def test_completion_with_collection_model_retrieves_from_it_alone(team: Team) -> None:
    in_collection = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    await team.add_document("viewer", "Note", PRIVATE)
    body = {
        "messages": [{"role": "user", "content": "How is the payments database failover started?"}]
    }
    scoped = await team.client.post(
        "/v1/chat/completions",
        json={**body, "model": f"rag:{team.collection_id}"},
        headers=team.headers["viewer"],
    )
    outsider = await team.client.post(
        "/v1/chat/completions",
        json={**body, "model": f"rag:{team.collection_id}"},
        headers=team.headers["outsider"],
    )
    assert scoped.status_code == 200, scoped.text
    assert {s["document_id"] for s in scoped.json()["sources"]} == {in_collection["id"]}
    assert outsider.status_code == 404
    assert outsider.json()["error"]["code"] == "model_not_found"


async def _key(team: Team, who: str, **body: Any) -> httpx.Response:
    return await team.client.post(
        "/api/keys/", json={"name": "bot", **body}, headers=team.headers[who]
    )


async def test_scoped_key_retrieves_only_its_collections(team: Team) -> None:
    in_collection = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    await team.add_document("viewer", "Note", PRIVATE)
    created = await _key(team, "viewer", collection_ids=[team.collection_id])
    assert created.status_code == 201, created.text
    assert created.json()["collection_ids"] == [team.collection_id]
    key = {"Authorization": f"Bearer {created.json()['key']}"}

    answer = await team.client.post(
        "/api/chat/",
        json={"message": "How is the payments database failover started?"},
        headers=key,
    )
    documents = await team.client.get("/api/documents/", headers=key)
    listed = await team.client.get("/api/keys/", headers=team.headers["viewer"])

    assert _cited(answer) == {in_collection["id"]}
    assert [d["id"] for d in documents.json()] == [in_collection["id"]]
    assert listed.json()[0]["collection_ids"] == [team.collection_id]


async def test_scoped_key_for_collection_not_mine_is_404(team: Team) -> None:
    response = await _key(team, "outsider", collection_ids=[team.collection_id])
    assert response.status_code == 404
    assert response.json()["error"] == "collection_not_found"


async def test_scoped_key_after_removal_retrieves_nothing(team: Team) -> None:
    await team.add_document("editor", "Runbook", RUNBOOK, collection_id=team.collection_id)
    await team.add_document("viewer", "Note", PRIVATE)
    key = {
        "Authorization": "Bearer "
        + (await _key(team, "viewer", collection_ids=[team.collection_id])).json()["key"]
    }
    await team.client.delete(
        f"/api/collections/{team.collection_id}/members/{team.user_ids['viewer']}/",
        headers=team.headers["owner"],
    )
    answer = await team.client.post(
        "/api/chat/",
        json={"message": "How is the payments database failover started?"},
        headers=key,
    )
    models = await team.client.get("/v1/models", headers=key)
    assert _cited(answer) == set()  # not the owner's private note either
    assert [m["id"] for m in models.json()["data"]] == ["rag", "rag-embedding"]


async def test_account_deletion_removes_solely_owned_collections_keeps_uploads_elsewhere(
    team: Team,
) -> None:
    client, state = team.client, team.state
    theirs = await client.post(
        "/api/collections/", json={"name": "Editor's own"}, headers=team.headers["editor"]
    )
    own_doc = await team.add_document(
        "editor", "Handbook", HANDBOOK, collection_id=theirs.json()["id"]
    )
    uploaded = await team.add_document(
        "editor", "Runbook", RUNBOOK, collection_id=team.collection_id
    )
    response = await client.request(
        "DELETE",
        "/api/me/",
        json={"password": "correct horse 1"},
        headers=team.headers["editor"],
    )
    assert response.status_code == 204, response.text

    assert await _count(state, Collection.id, Collection.id == theirs.json()["id"]) == 0
    assert await _count(state, Document.id, Document.id == own_doc["id"]) == 0
    assert await _count(state, VectorEntry.seq, VectorEntry.document_id == own_doc["id"]) == 0
    read = await client.get(f"/api/documents/{uploaded['id']}/", headers=team.headers["viewer"])
    assert read.status_code == 200
    assert uploaded["id"] in _cited(await _chat(team, "viewer"))
    members = await client.get(
        f"/api/collections/{team.collection_id}/members/", headers=team.headers["owner"]
    )
    assert {m["role"] for m in members.json()} == {"owner", "viewer"}
