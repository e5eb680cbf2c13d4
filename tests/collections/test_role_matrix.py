"""The role matrix: every route that touches a collection, called by its owner, an editor, a
viewer, a non-member and an administrator who is not a member; the expected status of each.
Non-members (administrators included) get 404, never 403: no existence oracle.

Roles are tried in the order below, so only the last callers' successes change the state;
each route's `prepare` makes a fresh target (a document, a member) for every caller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app.api.state import State
from tests.collections.conftest import Team, make_team
from tests.conftest import new_user

ORDER = ("outsider", "admin", "viewer", "editor", "owner")
QUESTION = "How is the payments database failover started?"
RUNBOOK = "The payments database failover is started with the command pgswitch promote."

Prepared = dict[str, Any]


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str  # formatted with the prepared values
    expected: dict[str, int]
    body: Callable[[Prepared], dict[str, Any] | None] = lambda _: None
    prepare: Callable[[Team, str], Awaitable[Prepared]] | None = None


def _members(owner: int, editor: int, viewer: int, outsider: int, admin: int) -> dict[str, int]:
    return {
        "owner": owner,
        "editor": editor,
        "viewer": viewer,
        "outsider": outsider,
        "admin": admin,
    }


READ = _members(200, 200, 200, 404, 404)
OWNER_ONLY = _members(200, 403, 403, 404, 404)
EDITORS = _members(201, 201, 403, 404, 404)


async def _document(team: Team, who: str) -> Prepared:
    made = await team.add_document(
        "owner", f"Runbook for {who}", f"{RUNBOOK} Copy {who}.", collection_id=team.collection_id
    )
    return {"document_id": made["id"]}


async def _spare_member(team: Team, who: str) -> Prepared:
    email = f"spare-{who}@example.com"
    await new_user(team.client, email)
    added = await team.client.post(
        f"/api/collections/{team.collection_id}/members/",
        json={"email": email, "role": "viewer"},
        headers=team.headers["owner"],
    )
    assert added.status_code == 201, added.text
    return {"user_id": added.json()["user_id"]}


async def _spare_user(team: Team, who: str) -> Prepared:
    await new_user(team.client, f"new-{who}@example.com")
    return {"email": f"new-{who}@example.com"}


async def _self(team: Team, who: str) -> Prepared:
    return {"user_id": team.user_ids[who]}


ROUTES = [
    Route("get collection", "GET", "/api/collections/{c}/", READ),
    Route(
        "rename collection",
        "PATCH",
        "/api/collections/{c}/",
        OWNER_ONLY,
        body=lambda _: {"name": "Renamed"},
    ),
    Route("list members", "GET", "/api/collections/{c}/members/", READ),
    Route(
        "add member",
        "POST",
        "/api/collections/{c}/members/",
        _members(201, 403, 403, 404, 404),
        body=lambda p: {"email": p["email"], "role": "viewer"},
        prepare=_spare_user,
    ),
    Route(
        "change role",
        "PATCH",
        "/api/collections/{c}/members/{user_id}/",
        OWNER_ONLY,
        body=lambda _: {"role": "editor"},
        prepare=_spare_member,
    ),
    Route(
        "remove member",
        "DELETE",
        "/api/collections/{c}/members/{user_id}/",
        _members(204, 403, 403, 404, 404),
        prepare=_spare_member,
    ),
    Route(
        "leave",
        "DELETE",
        "/api/collections/{c}/members/{user_id}/",
        _members(409, 204, 204, 404, 404),  # the last owner cannot leave
        prepare=_self,
    ),
    Route(
        "add document",
        "POST",
        "/api/documents/",
        EDITORS,
        body=lambda p: {
            "title": "New",
            "content": f"{RUNBOOK} {p['who']}",
            "collection_id": p["c"],
        },
    ),
    Route("list documents", "GET", "/api/documents/?collection_id={c}", READ),
    Route("read document", "GET", "/api/documents/{document_id}/", READ, prepare=_document),
    Route(
        "delete document",
        "DELETE",
        "/api/documents/{document_id}/",
        _members(204, 204, 403, 404, 404),
        prepare=_document,
    ),
    Route(
        "chat",
        "POST",
        "/api/chat/",
        READ,
        body=lambda p: {"message": QUESTION, "collection_ids": [p["c"]]},
    ),
    Route(
        "chat stream",
        "POST",
        "/api/chat/stream/",
        READ,
        body=lambda p: {"message": QUESTION, "collection_ids": [p["c"]]},
    ),
    Route("model", "GET", "/v1/models/rag:{c}", READ),
    Route(
        "completion",
        "POST",
        "/v1/chat/completions",
        READ,
        body=lambda p: {
            "model": f"rag:{p['c']}",
            "messages": [{"role": "user", "content": QUESTION}],
        },
    ),
    Route(
        "scoped key",
        "POST",
        "/api/keys/",
        _members(201, 201, 201, 404, 404),
        body=lambda p: {"name": f"bot {p['who']}", "collection_ids": [p["c"]]},
    ),
    Route(
        "delete collection",
        "DELETE",
        "/api/collections/{c}/",
        _members(204, 403, 403, 404, 404),
    ),
]


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
async def test_route_each_role_gets_expected_status(
    client: httpx.AsyncClient, state: State, route: Route
) -> None:
    team = await make_team(client, state)
    await team.add_document("editor", "Runbook", RUNBOOK, collection_id=team.collection_id)
    got: dict[str, int] = {}
    for who in ORDER:
        prepared: Prepared = {"c": team.collection_id, "who": who}
        if route.prepare is not None:
            prepared.update(await route.prepare(team, who))
        response = await client.request(
            route.method,
            route.path.format(**prepared),
            json=route.body(prepared),
            headers=team.headers[who],
        )
        got[who] = response.status_code
    assert got == route.expected
