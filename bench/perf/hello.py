"""The baseline: a bare FastAPI app, served with the same uvicorn flags as `chatbot serve`.

python -m bench.perf.hello PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        proxy_headers=True,
        server_header=False,
        log_level="warning",
    )
