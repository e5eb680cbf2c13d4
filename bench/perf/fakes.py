"""The wire fakes of tests/fakes (Hugging Face chat and embeddings, Pinecone) on one port, in
a process of their own, with a fixed latency on every chat completion (the "slow LLM").

    python -m bench.perf.fakes PORT [--llm-delay 1.0]

Paths under /v1/ and /embed go to the Hugging Face fake, everything else to the Pinecone fake
(whose answers name this server as the index host).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.fakes.huggingface import FakeHuggingFace
from tests.fakes.pinecone import FakePinecone

API_KEY = "bench-pinecone-key"
ANSWER = "Every employee gets 25 days of paid leave [1]."


def build(llm_delay: float) -> ASGIApp:
    huggingface = FakeHuggingFace(answer=ANSWER)
    pinecone = FakePinecone(api_key=API_KEY)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path.startswith("/v1/") or path == "/embed"):
            if path == "/v1/chat/completions":
                await asyncio.sleep(llm_delay)
                # The first word is when this answer left the fake (same clock as the client):
                # bench.perf.first_token measures how long the app takes to pass it on.
                huggingface.answer = f"{time.time():.6f} {ANSWER}"
            # The fakes record every request; a benchmark sends thousands.
            huggingface.requests.clear()
            await huggingface.app(scope, receive, send)
        elif scope["type"] == "http" and path == "/hello":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        else:
            pinecone.requests.clear()
            await pinecone.app(scope, receive, send)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("port", type=int)
    parser.add_argument("--llm-delay", type=float, default=1.0)
    args = parser.parse_args()
    uvicorn.run(
        build(args.llm_delay),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        lifespan="off",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
