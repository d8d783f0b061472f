"""Graceful shutdown: on SIGTERM the API ends its open streams with a ``reconnect`` event and
exits, a client resumes with ``Last-Event-ID`` and misses nothing; the worker and the runner
exit on SIGTERM too, in the middle of a run, without needing a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

from tests.api_helpers import (
    sse_events,
    start_streaming_run,
    wait_for_pending_interaction,
    wait_for_run,
)
from tether.devstack.processes import Service, wait_http
from tether.devstack.stack import Stack

# A hang guard: Service.stop would SIGKILL after 10 s; a graceful exit comes well before.
EXIT_BOUND_S = 10.0
# uvicorn, once it has shut down gracefully, raises the signal it caught again, so a server
# ends "killed by SIGTERM" even when it finished cleanly; the worker exits 0.
SERVER_EXIT = {0, -signal.SIGTERM}


def _terminate(service: Service) -> int:
    """SIGTERM and the exit code; fails if the process does not exit within the bound."""
    assert service.proc is not None
    service.proc.send_signal(signal.SIGTERM)
    try:
        return service.proc.wait(EXIT_BOUND_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{service.name} ignored SIGTERM:\n{service.tail()}") from None


async def test_sigterm_ends_streams_with_reconnect_and_resume_misses_nothing(
    own_stack: Stack,
) -> None:
    async with own_stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])

        first: list[tuple[str | None, str, str]] = []
        opened = asyncio.Event()

        async def read() -> None:
            async for event in sse_events(client, run["run_id"]):
                first.append(event)
                opened.set()

        reader = asyncio.create_task(read())
        await asyncio.wait_for(opened.wait(), 30)
        assert _terminate(own_stack.api) in SERVER_EXIT
        await asyncio.wait_for(reader, 30)  # the stream ended, it was not left hanging

        event_id, event_type, data = first[-1]
        assert event_type == "reconnect", first
        assert event_id is None  # so the client's Last-Event-ID stays the last event's seq
        seen = [int(i) for i, _, _ in first[:-1] if i is not None]
        assert json.loads(data) == {
            "run_id": run["run_id"],
            "last_seq": seen[-1],
            "reason": "shutdown",
        }

        own_stack.api.start()
        await wait_http(f"{own_stack.api_url}/readyz", own_stack.api)
        answered = await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}},
        )
        assert answered.status_code == 202
        rest = []
        async for event in sse_events(
            client, run["run_id"], headers={"Last-Event-ID": str(seen[-1])}
        ):
            rest.append(event)
            if event[1] == "end":
                break
        assert json.loads(rest[-1][2])["status"] == "completed"
        seqs = seen + [int(i) for i, _, _ in rest if i is not None]
        assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate


async def test_worker_and_runner_exit_on_sigterm_mid_run(own_stack: Stack) -> None:
    async with own_stack.client() as client:
        run_id = await start_streaming_run(client, 100)
        deadline = time.monotonic() + 10
        while len((await client.get(f"/v1/runs/{run_id}/events")).json()["events"]) < 5:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

        # The worker stops while it follows the run; another worker picks the follow up.
        assert _terminate(own_stack.worker) == 0
        await own_stack.restart_worker()
        done = await wait_for_run(client, run_id, {"completed", "failed"}, timeout=60)
        assert done["status"] == "completed", own_stack.logs()
        events = (await client.get(f"/v1/runs/{run_id}/events")).json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

        # The runner stops with a stream open (the next run's) within its own bound.
        await start_streaming_run(client, 100)
        assert _terminate(own_stack.runner) in SERVER_EXIT
