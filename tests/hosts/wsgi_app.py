"""A WSGI app for the real-server tests (waitress, gunicorn), which import it
as `wsgi_app:app` from this directory.

`/spin` never answers by itself: its handler loops in pure Python (a loop
with a real body, see DESIGN.md) until a forced stop ends it. Any other path
answers `200 ok`. The app imports nothing of threadctl: the servers are run
the way their users run them, and threadctl reaches them from outside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any


def spin() -> None:
    n = 0
    while True:
        n = (n * 7 + 3) % 1_000_003


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/spin":
        spin()
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
