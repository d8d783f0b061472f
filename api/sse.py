"""The run's live transcript as server-sent events, read from the store.

The API never talks to a runner: ``follow_run`` persists events, this tails the table.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store import runs, transcript

KEEPALIVE_S = 15.0
PAGE = 500


def format_event(seq: int, event_type: str, data: str) -> str:
    return f"id: {seq}\nevent: {event_type}\ndata: {data}\n\n"


async def run_event_stream(
    db: async_sessionmaker[AsyncSession],
    project_id: str,
    run_id: str,
    after: int,
    poll_s: float,
) -> AsyncIterator[str]:
    """Every event with ``seq > after``, then live ones; an ``end`` event once the run ended."""
    cursor = after
    last_sent = time.monotonic()
    while True:
        async with db() as session:
            # Status first: the run is recorded as ended only after its last event was
            # persisted, so "ended and nothing new" means the transcript is complete.
            run = await runs.get_run(session, project_id, run_id)
            events = await transcript.list_events(
                session, project_id, run_id, after=cursor, limit=PAGE
            )
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
