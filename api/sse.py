"""The run's live transcript as server-sent events, read from the store.

The API never talks to a runner: ``follow_run`` persists events, this tails the table.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import shutdown
from api.errors import store_unavailable
from store import runs, transcript

KEEPALIVE_S = 15.0
PAGE = 500
# What a client waits before it reconnects after a ``reconnect`` event (the SSE ``retry`` field).
RECONNECT_RETRY_MS = 1000


def format_event(seq: int, event_type: str, data: str) -> str:
    return f"id: {seq}\nevent: {event_type}\ndata: {data}\n\n"


def reconnect_event(run_id: str, last_seq: int, reason: str) -> str:
    """The last event of a stream that ends before its run: come back after ``last_seq``."""
    data = json.dumps({"run_id": run_id, "last_seq": last_seq, "reason": reason})
    return f"event: reconnect\nretry: {RECONNECT_RETRY_MS}\ndata: {data}\n\n"


async def run_event_stream(
    db: async_sessionmaker[AsyncSession],
    project_id: str,
    run_id: str,
    after: int,
    poll_s: float,
) -> AsyncIterator[str]:
    """Every event with ``seq > after``, then live ones; an ``end`` event once the run ended.

    A stream that cannot go on, because the API is shutting down or the store went away, ends
    with a ``reconnect`` event instead: the client resumes with ``Last-Event-ID`` (the last
    ``id`` it saw; ``reconnect`` carries none) and gets everything after it.
    """
    cursor = after
    last_sent = time.monotonic()
    while True:
        if shutdown.draining():
            yield reconnect_event(run_id, cursor, "shutdown")
            return
        try:
            async with db() as session:
                # Status first: the run is recorded as ended only after its last event was
                # persisted, so "ended and nothing new" means the transcript is complete.
                run = await runs.get_run(session, project_id, run_id)
                events = await transcript.list_events(
                    session, project_id, run_id, after=cursor, limit=PAGE
                )
        except Exception as err:
            if not store_unavailable(err):
                raise
            yield reconnect_event(run_id, cursor, "store_unavailable")
            return
        for event in events:
            yield format_event(event.seq, event.type.value, event.model_dump_json())
            cursor = event.seq
        if events:
            last_sent = time.monotonic()
            continue
        if run is None or run.status.is_terminal:
            end = {
                "run_id": run_id,
                "status": run.status.value if run else None,
                "status_reason": run.status_reason if run else None,
                "last_seq": cursor,
            }
            yield f"event: end\ndata: {json.dumps(end)}\n\n"
            return
        if time.monotonic() - last_sent > KEEPALIVE_S:
            yield ": keepalive\n\n"
            last_sent = time.monotonic()
        await asyncio.sleep(poll_s)
