"""Test helpers over the HTTP API: wait until a run reaches a status or asks a question, and
read a run's SSE stream."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx


async def wait_for_run(
    client: httpx.AsyncClient,
    run_id: str,
    statuses: set[str],
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll ``GET /v1/runs/{id}`` until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/runs/{run_id}")
        if response.status_code == 200:
            run = response.json()
            if run["status"] in statuses:
                return run
        await asyncio.sleep(0.05)
    raise TimeoutError(f"run {run_id} not in {statuses} after {timeout}s: {run}")


async def wait_for_pending_interaction(
    client: httpx.AsyncClient, run_id: str, timeout: float = 30.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get(
            "/v1/interactions", params={"status": "pending", "run_id": run_id}
        )
        pending = response.json()["interactions"]
        if pending:
            return pending[0]
        await asyncio.sleep(0.05)
    raise TimeoutError(f"run {run_id} asked nothing within {timeout}s")


async def sse_events(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[str | None, str, str]]:
    """Parse ``GET /v1/runs/{id}/stream`` into ``(id, event, data)`` until it closes."""
    async with client.stream(
        "GET", f"/v1/runs/{run_id}/stream", headers=headers, params=params, timeout=60.0
    ) as response:
        assert response.status_code == 200, await response.aread()
        event_id: str | None = None
        event_type, data = "message", ""
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield event_id, event_type, data
                event_id, event_type, data = None, "message", ""
            elif line.startswith(":"):
                continue
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("event:"):
                event_type = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()


async def collect_sse(client: httpx.AsyncClient, run_id: str, **kwargs: Any) -> list[dict]:
    """Every SSE event of the run until ``end``; each as ``{"id", "event", "data"}``."""
    out = []
    async for event_id, event_type, data in sse_events(client, run_id, **kwargs):
        out.append({"id": event_id, "event": event_type, "data": json.loads(data)})
        if event_type == "end":
            break
    return out


async def start_streaming_run(client: httpx.AsyncClient, deltas: int) -> str:
    """Start a ``scripted`` run that emits ``deltas`` message deltas, 50 ms apart (``"0 "``,
    ``"1 "``, ...); its run ID."""
    steps: list[dict] = []
    for i in range(deltas):
        steps += [{"emit": "message.delta", "data": {"text": f"{i} "}}, {"sleep": 0.05}]
    started = await client.post("/v1/runs", json={"agent": "scripted", "input": {"steps": steps}})
    assert started.status_code == 202, started.text
    return started.json()["run_id"]
