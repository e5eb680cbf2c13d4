"""One deadline per turn (issue 22): the follow-up's condensing call, retrieval and the answer
share `CHAT_TURN_DEADLINE_SECONDS`, and the condensing call gets only its own share of it.

Through the real Hugging Face client on every chat path, against two wire fakes: one serves
the embeddings and stays healthy, the other is the LLM and is made to fail.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.core import deadline
from app.core.errors import UpstreamUnavailable
from app.rag import memory
from app.rag.backends.huggingface import HuggingFaceGenerator
from app.rag.memory import LLMCondenser
from app.rag.protocols import ChatTurn, GenerationRequest
from tests.conftest import new_user
from tests.conversations.conftest import ANSWER, RemoteFactory
from tests.fakes.huggingface import FakeHuggingFace, RecordedRequest, delay, status
from tests.fakes.server import serve

LEAVE = (
    "Employees receive 25 days of paid annual leave per calendar year. Up to five unused days "
    "can be carried over until the end of March of the following year."
)
FIRST = "How many days of annual leave do employees get?"
FOLLOWUP = "And those?"  # leans on the first question: needs condensing
STANDALONE = "How many unused days of annual leave can be carried over into next year?"
# The turn's budget in these tests; each call's own retry deadline is as long, so a turn that
# let two calls retry for their own deadline would take twice this.
BUDGET = 2.0
PATHS = ["chat", "chat_stream", "conversation", "v1", "v1_stream"]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[tuple[FakeHuggingFace, str]]:
    fake = FakeHuggingFace(answer=ANSWER)
    with serve(fake.app) as url:
        yield fake, url


@pytest.fixture
def llm(llm_server: tuple[FakeHuggingFace, str]) -> FakeHuggingFace:
    llm_server[0].reset()
    return llm_server[0]


@pytest.fixture
def settings(llm_server: tuple[FakeHuggingFace, str]) -> dict[str, Any]:
    return {
        "llm_base_url": f"{llm_server[1]}/v1",
        "llm_retry_deadline_seconds": BUDGET,
        "chat_turn_deadline_seconds": BUDGET,
        "chat_condense_deadline_seconds": 0.5,
    }


def _is_condense(request: RecordedRequest) -> bool:
    return bool(request.json["messages"][0]["content"] == memory.CONDENSE_SYSTEM)


def _condense_calls(fake: FakeHuggingFace) -> int:
    return sum(_is_condense(r) for r in fake.requests)


async def _first_turn(client: httpx.AsyncClient) -> tuple[dict[str, str], int]:
    """A user with the leave document and a first, healthy turn: headers, conversation id."""
    headers = await new_user(client)
    upload = {"title": "Leave", "content": LEAVE}
    assert (await client.post("/api/documents/", json=upload, headers=headers)).is_success
    response = await client.post("/api/chat/", json={"message": FIRST}, headers=headers)
    assert response.status_code == 200, response.text
    return headers, int(response.json()["conversation_id"])


async def _second_turn(
    client: httpx.AsyncClient, headers: dict[str, str], path: str, question: str, conversation: int
) -> httpx.Response:
    """The follow-up on one of the chat paths; the /v1 client sends its own history."""
    if path in ("chat", "chat_stream", "conversation"):
        body: dict[str, Any] = {"message": question}
        if path == "conversation":
            body["conversation_id"] = conversation
        url = "/api/chat/stream/" if path == "chat_stream" else "/api/chat/"
        return await client.post(url, json=body, headers=headers)
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": ANSWER},
        {"role": "user", "content": question},
    ]
    body = {"model": "rag", "messages": messages, "stream": path == "v1_stream"}
    return await client.post("/v1/chat/completions", json=body, headers=headers)


def _unavailable(path: str, response: httpx.Response) -> bool:
    """Whether the response tells the user the LLM is unavailable, in that path's shape."""
    if path == "chat_stream":
        return (
            response.status_code == 200
            and "upstream_unavailable" in response.text.split("event: error", 1)[-1]
        )
    if path == "v1_stream":
        errors = [
            json.loads(line.removeprefix("data: "))["error"]
            for line in response.text.splitlines()
            if line.startswith("data: {") and '"error"' in line
        ]
        return response.status_code == 200 and [e["code"] for e in errors] == [
            "upstream_unavailable"
        ]
    if path.startswith("v1"):
        return response.status_code == 503 and (
            response.json()["error"]["code"] == "upstream_unavailable"
        )
    return response.status_code == 503 and response.json()["error"] == "upstream_unavailable"


def _answered(path: str, response: httpx.Response) -> bool:
    if response.status_code != 200:
        return False
    if path == "chat_stream":
        return "event: done" in response.text and "event: error" not in response.text
    if path == "v1_stream":
        return response.text.rstrip().endswith("data: [DONE]") and '"error"' not in response.text
    if path.startswith("v1"):
        return bool(response.json()["choices"][0]["message"]["content"] == ANSWER)
    return bool(response.json()["response"] == ANSWER)


@pytest.mark.parametrize("path", PATHS)
async def test_followup_llm_down_answers_503_within_one_budget_and_keeps_question(
    remote: RemoteFactory, llm: FakeHuggingFace, settings: dict[str, Any], path: str
) -> None:
    async with remote(**settings) as (client, _):
        headers, conversation = await _first_turn(client)
        llm.reset()
        llm.push(status(503), times=None)

        started = time.monotonic()
        response = await _second_turn(client, headers, path, FOLLOWUP, conversation)
        elapsed = time.monotonic() - started

        assert _unavailable(path, response), response.text
        # Both calls were tried, the answer retried, in the one budget: before, the condensing
        # call retried for its own deadline and the answer for another (about 2 * BUDGET).
        assert _condense_calls(llm) >= 1
        assert len(llm.requests) - _condense_calls(llm) >= 2
        # Every upstream attempt of the turn falls within the one budget (before: the
        # condensing call retried for its own deadline, then the answer for another, about
        # 2 * BUDGET). Timed by the attempts' arrival at the fake, from the turn's first call,
        # so what a loaded machine adds before the pipeline starts or after the last attempt
        # (authentication, storing the question, rendering the stream) does not count.
        arrivals = [request.at for request in llm.requests]
        span = max(arrivals) - min(arrivals)
        assert span < 1.5 * BUDGET, span
        assert elapsed < 3 * BUDGET, elapsed
        history = await client.get("/api/chat-history/", headers=headers)
        stored = [m["content"] for m in history.json() if m["role"] == "user"]
        assert stored[-1] == FOLLOWUP


@pytest.mark.parametrize("path", PATHS)
async def test_followup_condensing_call_waits_only_its_share_then_answers(
    remote: RemoteFactory, llm: FakeHuggingFace, settings: dict[str, Any], path: str
) -> None:
    async with remote(**settings) as (client, _):
        headers, conversation = await _first_turn(client)
        llm.reset()
        llm.push(delay(3 * BUDGET))  # the condensing call's reply never comes in time

        started = time.monotonic()
        response = await _second_turn(client, headers, path, FOLLOWUP, conversation)
        elapsed = time.monotonic() - started

        assert _answered(path, response), response.text
        assert [_is_condense(r) for r in llm.requests] == [True, False]
        # The 0.5 s share, not the 6 s the reply would have taken (the rules retrieved).
        assert elapsed < BUDGET, elapsed


@pytest.mark.parametrize("path", PATHS)
async def test_followup_standalone_question_makes_no_condensing_call(
    remote: RemoteFactory, llm: FakeHuggingFace, settings: dict[str, Any], path: str
) -> None:
    async with remote(**settings) as (client, _):
        headers, conversation = await _first_turn(client)
        llm.reset()

        response = await _second_turn(client, headers, path, STANDALONE, conversation)

        assert _answered(path, response), response.text
        assert [_is_condense(r) for r in llm.requests] == [False]


@pytest.mark.parametrize("path", PATHS)
async def test_followup_leaning_on_context_still_condenses(
    remote: RemoteFactory, llm: FakeHuggingFace, settings: dict[str, Any], path: str
) -> None:
    async with remote(**settings) as (client, _):
        headers, conversation = await _first_turn(client)
        llm.reset()

        response = await _second_turn(client, headers, path, FOLLOWUP, conversation)

        assert _answered(path, response), response.text
        condense, answer = llm.requests
        assert _is_condense(condense)
        assert f"Last question: {FOLLOWUP}" in condense.json["messages"][1]["content"]
        assert not _is_condense(answer)


# --- the pieces, without the app ----------------------------------------------------------------


def _request() -> GenerationRequest:
    return GenerationRequest(question="q", contexts=[], messages=[ChatTurn("user", "q")])


async def test_generate_turn_deadline_spent_gives_up_after_one_attempt(
    llm: FakeHuggingFace, llm_server: tuple[FakeHuggingFace, str]
) -> None:
    # Its own retry deadline is long: only the turn's (already spent) stops the retries.
    generator = HuggingFaceGenerator(
        model="m", api_key="hf_x", base_url=f"{llm_server[1]}/v1", retry_deadline=60
    )
    llm.push(status(503), times=None)
    try:
        with deadline.within(0), pytest.raises(UpstreamUnavailable):
            await generator.generate(_request())
    finally:
        await generator.aclose()

    assert len(llm.requests) == 1


class _SilentGenerator:
    """Never answers: the call only ends when it is cancelled."""

    def __init__(self) -> None:
        self.calls = 0

    async def generate(self, request: GenerationRequest) -> str:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    def stream(self, request: GenerationRequest) -> Any:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def test_llm_condenser_silent_model_falls_back_to_rules_after_its_share() -> None:
    generator = _SilentGenerator()
    condenser = LLMCondenser(generator, deadline_seconds=0.05)

    async with asyncio.timeout(5):  # a failure, not a hang, if the share is not kept
        queries = await condenser.queries(FOLLOWUP, [ChatTurn("user", FIRST)])

    assert queries == [f"{FIRST} {FOLLOWUP}", FOLLOWUP]
    assert generator.calls == 1


async def test_llm_condenser_share_never_outlasts_the_turn() -> None:
    generator = _SilentGenerator()
    condenser = LLMCondenser(generator, deadline_seconds=60)

    async with asyncio.timeout(5):
        with deadline.within(0.05):
            queries = await condenser.queries(FOLLOWUP, [ChatTurn("user", FIRST)])

    assert queries == [f"{FIRST} {FOLLOWUP}", FOLLOWUP]


async def test_llm_condenser_standalone_question_is_not_sent() -> None:
    generator = _SilentGenerator()
    condenser = LLMCondenser(generator)

    async with asyncio.timeout(5):
        queries = await condenser.queries(STANDALONE, [ChatTurn("user", FIRST)])

    assert queries == [STANDALONE]
    assert generator.calls == 0
