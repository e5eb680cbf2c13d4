"""An account deletion interrupted between its committed steps is finished at the next
start-up (issue 22), once however many workers start; a deactivated account, disabled too, is
never mistaken for one. On SQLite and PostgreSQL; the vectors through Pinecone's wire fake."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from app.accounts.service import AccountDeletion
from app.api.state import State
from app.auth.models import User
from app.auth.repository import RefreshTokenRepository, UserRepository
from app.auth.service import deactivate_user
from app.core.db import utcnow
from app.core.errors import DatabaseUnavailable, UpstreamUnavailable
from app.documents.models import Document, DocumentStatus
from tests.conftest import AppFactory, new_user
from tests.fakes.pinecone import FakePinecone

PASSWORD = "correct horse 1"
SECRET = "The vault under the Quillon observatory opens with the code ORCHID-7731."


async def _upload(client: httpx.AsyncClient, headers: dict[str, str], title: str, text: str) -> int:
    response = await client.post(
        "/api/documents/", json={"title": title, "content": text}, headers=headers
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _delete_me(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.request("DELETE", "/api/me/", json={"password": PASSWORD}, headers=headers)


async def _user(state: State, email: str) -> User | None:
    async with state["sessions"]() as session:
        return (await session.execute(select(User).where(User.email == email))).scalar_one_or_none()


async def _documents(state: State) -> int:
    async with state["sessions"]() as session:
        return int((await session.execute(select(func.count()).select_from(Document))).scalar_one())


def _resumed() -> float:
    return REGISTRY.get_sample_value("account_deletions_resumed_total") or 0.0


def _fail(exc: Exception) -> Any:
    async def fail(*_: Any, **__: Any) -> None:
        raise exc

    return fail


async def test_restart_after_crash_before_vectors_are_deleted_finishes_the_deletion(
    remote: Any, pinecone: FakePinecone, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproduced: the account stayed disabled forever, its documents `deleting` and its
    vectors in Pinecone."""
    async with remote() as (client, state):
        keeper = await new_user(client, "keeper@example.com")
        kept = await _upload(client, keeper, "Harbour", "Tallinn has a harbour.")
        victim = await new_user(client, "victim@example.com")
        await _upload(client, victim, "Vault", SECRET)
        monkeypatch.setattr(
            state["documents"].store,
            "delete_documents",
            _fail(UpstreamUnavailable("Pinecone could not be reached for the delete.")),
        )

        assert (await _delete_me(client, victim)).status_code == 503
        monkeypatch.undo()
        interrupted = await _user(state, "victim@example.com")
        assert interrupted is not None
        assert not interrupted.is_active
        assert interrupted.deletion_started_at is not None
        assert len(pinecone.vectors()) == 2  # the victim's vectors are still there
    before = _resumed()

    async with remote() as (client, state):
        assert await _user(state, "victim@example.com") is None
        assert {v.metadata["document_id"] for v in pinecone.vectors().values()} == {kept}
        assert await _documents(state) == 1
        assert (await client.get("/api/me/", headers=keeper)).status_code == 200
    assert _resumed() == before + 1


async def test_restart_after_crash_before_the_user_row_goes_finishes_the_deletion(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_factory() as (client, state):
        victim = await new_user(client, "victim@example.com")
        await _upload(client, victim, "Vault", SECRET)
        monkeypatch.setattr(
            AccountDeletion, "_remove_user", _fail(DatabaseUnavailable("The database failed."))
        )

        assert (await _delete_me(client, victim)).status_code == 503
        monkeypatch.undo()
        assert await _user(state, "victim@example.com") is not None
        assert await _documents(state) == 0  # step 2 was done

    async with app_factory() as (client, state):
        assert await _user(state, "victim@example.com") is None
        assert (await client.get("/api/me/", headers=victim)).status_code == 401


async def test_restart_keeps_a_deactivated_account_and_its_documents(
    app_factory: AppFactory,
) -> None:
    """`chatbot deactivate` disables an account too; it must never be taken for a deletion."""
    async with app_factory() as (client, state):
        headers = await new_user(client, "paused@example.com")
        await _upload(client, headers, "Vault", SECRET)
        async with state["sessions"].begin() as session:
            users = UserRepository(session)
            user = await users.get_by_email("paused@example.com")
            assert user is not None
            await deactivate_user(users, RefreshTokenRepository(session), user)

    async with app_factory() as (_, state):
        paused = await _user(state, "paused@example.com")
        assert paused is not None
        assert not paused.is_active
        assert await _documents(state) == 1


async def _interrupted_deletion(
    client: httpx.AsyncClient, state: State, monkeypatch: pytest.MonkeyPatch
) -> int:
    """A user whose deletion failed after its first step (the claim released)."""
    headers = await new_user(client, "victim@example.com")
    await _upload(client, headers, "Vault", SECRET)
    monkeypatch.setattr(
        state["documents"], "purge", _fail(DatabaseUnavailable("The database failed."))
    )
    assert (await _delete_me(client, headers)).status_code == 503
    monkeypatch.undo()
    user = await _user(state, "victim@example.com")
    assert user is not None
    return user.id


async def test_recovery_by_several_workers_at_once_finishes_the_account_once(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_factory() as (client, state):
        await _interrupted_deletion(client, state, monkeypatch)
        purges = 0
        purge = state["documents"].purge

        async def counting_purge(document_ids: Any) -> None:
            nonlocal purges
            purges += 1
            await purge(document_ids)

        monkeypatch.setattr(state["documents"], "purge", counting_purge)
        workers = [
            AccountDeletion(state["sessions"], state["hasher"], state["documents"])
            for _ in range(3)
        ]

        finished = await asyncio.gather(*(worker.recover() for worker in workers))

        assert sorted(finished) == [0, 0, 1]
        assert purges == 1
        assert await _user(state, "victim@example.com") is None
        assert await _documents(state) == 0


async def test_recovery_leaves_a_deletion_under_a_live_claim_until_it_expires(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica starting while another is mid-deletion does not take it over; once the
    claim expires (its process died) the next sweep finishes it."""
    async with app_factory() as (client, state):
        user_id = await _interrupted_deletion(client, state, monkeypatch)
        async with state["sessions"].begin() as session:
            await session.execute(
                update(User)
                .where(User.id == user_id)
                .values(deletion_claimed_until=utcnow() + timedelta(seconds=60))
            )
        recovery = AccountDeletion(state["sessions"], state["hasher"], state["documents"])

        assert await recovery.recover() == 0
        assert await _user(state, "victim@example.com") is not None

        async with state["sessions"].begin() as session:
            await session.execute(
                update(User).where(User.id == user_id).values(deletion_claimed_until=utcnow())
            )
        assert await recovery.recover() == 1
        assert await _user(state, "victim@example.com") is None


async def test_interrupted_deletion_keeps_the_documents_invisible_meanwhile(
    app_factory: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app_factory() as (client, state):
        await _interrupted_deletion(client, state, monkeypatch)
        async with state["sessions"]() as session:
            statuses = set((await session.execute(select(Document.status))).scalars())
        reader = await new_user(client, "reader@example.com")
        answer = await client.post(
            "/api/chat/",
            json={"message": "What code opens the vault under the Quillon observatory?"},
            headers=reader,
        )

    assert statuses == {DocumentStatus.DELETING}
    assert answer.status_code == 200
    assert answer.json()["sources"] == []
