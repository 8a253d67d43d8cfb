"""An ASGI app for the uvicorn tests, which import it as `asgi_app:app` from
this directory; it imports nothing of threadctl.

`/slow` waits for a reply that never comes (asyncio.sleep for an hour: a
request stuck awaiting a slow backend); `/spin` never awaits, looping in
pure Python (a real body, see DESIGN.md), so it holds the event loop until
a forced stop ends it. Any other path answers `200 ok`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def spin() -> None:
    n = 0
    while True:
        n = (n * 7 + 3) % 1_000_003


async def slow_backend() -> None:
    await asyncio.sleep(3600)


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return  # lifespan: nothing to set up
    if scope["path"] == "/slow":
        await slow_backend()
    elif scope["path"] == "/spin":
        spin()
    body = b"ok\n"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
