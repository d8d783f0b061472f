"""Graceful shutdown of the API: open SSE streams end at once with a ``reconnect`` event.

uvicorn, on SIGTERM or SIGINT, stops accepting connections and then waits for the open ones to
finish (at most its ``--timeout-graceful-shutdown``); a live stream would never finish by
itself. So the app chains its own handler onto uvicorn's while it runs: it marks the process as
draining, and every stream, at its next poll, sends ``event: reconnect`` and ends. A client
(an ``EventSource``, the CLI) reconnects with ``Last-Event-ID`` to another replica, or to this
one once it is back, and misses nothing.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

_draining = False


def draining() -> bool:
    """The process was asked to stop: streams should end now."""
    return _draining


def install() -> None:
    """Chain onto the server's SIGTERM and SIGINT handlers; call from the app's lifespan.

    Only a Python handler is chained (uvicorn's, which it restores when it exits); with none
    (the app under a test client) nothing is installed.
    """
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if callable(previous):
            signal.signal(sig, _chained(previous))


def _chained(previous: Any) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        global _draining
        _draining = True
        previous(signum, frame)

    return handler
