"""A team as it would use the product: `chatbot serve` on 127.0.0.1, three users, two
collections. The viewer asks through `/api/chat/`, through the `openai` SDK with
`model="rag:<id>"`, and through a collection-scoped key; then the owner removes the viewer,
and the next answer on every one of those paths no longer cites the collection."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.openai.conftest import LiveServer, live_database, start_server

RUNBOOK = (
    "The payments database failover is started with the command pgswitch promote. "
    "The on-call engineer announces it in the incident channel first."
)
MINUTES = "The board approved the payments failover budget of forty thousand euros."
NOTE = "My own note: rehearse the payments database failover with the new engineer."
QUESTION = "How is the payments database failover started?"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    workdir = tmp_path_factory.mktemp("team")
    with live_database(workdir) as url:
        yield from start_server(workdir, url)


def _call(server: LiveServer, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        return client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _sources(completion: Any) -> set[int]:
    return {s["document_id"] for s in (completion.model_extra or {})["sources"]}


def _sdk(server: LiveServer, credential: str) -> OpenAI:
    return OpenAI(base_url=server.v1, api_key=credential, max_retries=0, timeout=120)


def test_team_viewer_cites_collection_until_removed(server: LiveServer) -> None:
    owner, editor, viewer = (
        server.login(f"{who}@team.example") for who in ("owner", "editor", "viewer")
    )
    runbooks = _created(
        _call(server, "POST", "/api/collections/", owner, json={"name": "Runbooks"})
    )
    board = _created(_call(server, "POST", "/api/collections/", owner, json={"name": "Board"}))
    for who, role in (("editor", "editor"), ("viewer", "viewer")):
        _created(
            _call(
                server,
                "POST",
                f"/api/collections/{runbooks['id']}/members/",
                owner,
                json={"email": f"{who}@team.example", "role": role},
            )
        )
    runbook = _created(
        _call(
            server,
            "POST",
            "/api/documents/",
            editor,
            json={"title": "Failover runbook", "content": RUNBOOK, "collection_id": runbooks["id"]},
        )
    )["id"]
    minutes = _created(
        _call(
            server,
            "POST",
            "/api/documents/",
            owner,
            json={"title": "Board minutes", "content": MINUTES, "collection_id": board["id"]},
        )
    )["id"]
    note = _created(
        _call(server, "POST", "/api/documents/", viewer, json={"title": "Note", "content": NOTE})
    )["id"]
    key = server.create_key(viewer, "team bot", collection_ids=[runbooks["id"]])["key"]
    model = f"rag:{runbooks['id']}"

    # 1. /api/chat/, narrowed to the collection, and over everything the viewer can see.
    narrowed = _call(
        server,
        "POST",
        "/api/chat/",
        viewer,
        json={"message": QUESTION, "collection_ids": [runbooks["id"]]},
    )
    everything = _call(server, "POST", "/api/chat/", viewer, json={"message": QUESTION})
    assert {s["document_id"] for s in narrowed.json()["sources"]} == {runbook}
    cited = {s["document_id"] for s in everything.json()["sources"]}
    assert runbook in cited
    assert note in cited
    assert minutes not in cited  # not a member of the board's collection
    assert "pgswitch promote" in narrowed.json()["response"]

    # 2. The openai SDK with the viewer's login token: the model picker is the knowledge base.
    with _sdk(server, viewer) as client:
        assert [m.id for m in client.models.list()] == ["rag", model, "rag-embedding"]
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": QUESTION}]
        )
        assert _sources(completion) == {runbook}
        assert "pgswitch promote" in (completion.choices[0].message.content or "")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model=f"rag:{board['id']}", messages=[{"role": "user", "content": QUESTION}]
            )

    # 3. The collection-scoped key of a team bot: the collection alone, not the viewer's note.
    with _sdk(server, key) as bot:
        answer = bot.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}]
        )
        assert _sources(answer) == {runbook}

    # The owner removes the viewer: the very next request of each path no longer cites it.
    removed = _call(
        server, "DELETE", f"/api/collections/{runbooks['id']}/members/{_me(server, viewer)}/", owner
    )
    assert removed.status_code == 204
    after = _call(server, "POST", "/api/chat/", viewer, json={"message": QUESTION})
    assert runbook not in {s["document_id"] for s in after.json()["sources"]}
    refused = _call(
        server,
        "POST",
        "/api/chat/",
        viewer,
        json={"message": QUESTION, "collection_ids": [runbooks["id"]]},
    )
    assert refused.status_code == 404
    with _sdk(server, viewer) as client:
        assert [m.id for m in client.models.list()] == ["rag", "rag-embedding"]
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": QUESTION}]
            )
    with _sdk(server, key) as bot:
        answer = bot.chat.completions.create(
            model="rag", messages=[{"role": "user", "content": QUESTION}]
        )
        assert _sources(answer) == set()
    # The editor's document stays with the collection for those who remain.
    kept = _call(
        server,
        "POST",
        "/api/chat/",
        editor,
        json={"message": QUESTION, "collection_ids": [runbooks["id"]]},
    )
    assert {s["document_id"] for s in kept.json()["sources"]} == {runbook}
    # Nothing the team typed or was given reaches the server log.
    log = server.log()
    assert all(secret not in log for secret in server.secrets)
    assert "pgswitch" not in log


def _me(server: LiveServer, token: str) -> int:
    response = _call(server, "GET", "/api/me/", token)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


README = Path(__file__).resolve().parents[2] / "README.md"


def teams_block() -> str:
    after = README.read_text().split("\n## Teams: collections\n", 1)[1]
    match = re.search(r"```bash\n(.*?)```", after, re.DOTALL)
    assert match, "the Teams section's shell block is missing from the README"
    return match.group(1)


def test_readme_teams_flow_runs_as_written(server: LiveServer, tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - the README's own commands
        ["/bin/bash", "-e", "-o", "pipefail", "-c", teams_block()],
        cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BASE": server.url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 8, result.stdout
    members = lines[:2]
    document, answer, models, completion, key, refused = lines[2:]
    assert [m["role"] for m in members] == ["editor", "viewer"]
    collection = document["collection_id"]
    assert "pgswitch promote" in answer["response"]
    assert {s["document_id"] for s in answer["sources"]} == {document["id"]}
    assert f"rag:{collection}" in [m["id"] for m in models["data"]]
    assert "pgswitch promote" in completion["choices"][0]["message"]["content"]
    assert key["collection_ids"] == [collection]
    assert refused["error"] == "collection_not_found"
