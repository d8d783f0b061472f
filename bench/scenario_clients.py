"""The scenario bench's clients: one run of the scenario, timed, as each kind of client does it.

- ``TetherPolling``: ``POST /v1/runs``, then ``GET /v1/runs/{id}`` every 10 ms until the run
  waits, answers at once, polls again until it completed.
- ``TetherStreaming``: ``POST /v1/runs``, then follows ``GET /v1/runs/{id}/stream`` and answers
  when ``interaction.requested`` arrives; finished is the stream's ``end`` event.
- ``BareTemporal``: the floor (bench/bare_scenario.py) through a Temporal client.

Every one returns a ``Sample``: A start -> 202, B start -> pause seen, C answer -> finish seen.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from bench.bare_scenario import BareScenarioWorkflow

POLL_S = 0.01
ANSWER_RETRY_S = 0.002
WAIT_LIMIT_S = 60.0  # a run that takes longer than this is broken, not slow

OPTIONS = [{"option_id": "allow", "name": "Allow"}, {"option_id": "deny", "name": "Deny"}]
SCRIPT = {
    "steps": [
        {"emit": "message", "data": {"text": "step 1"}},
        {"emit": "message", "data": {"text": "step 2"}},
        {"emit": "message", "data": {"text": "step 3"}},
        {"ask": {"kind": "permission", "prompt": "Run the tool?", "options": OPTIONS}},
        {"emit": "message", "data": {"text": "done"}},
        {"output": "ok"},
    ]
}
START = {"agent": "scripted", "input": SCRIPT}
ANSWER = {"option_id": "allow"}
# What an SSE client must see of a run of SCRIPT, in this order.
TRANSCRIPT = [
    "run.started",
    "message",
    "message",
    "message",
    "interaction.requested",
    "interaction.resolved",
    "message",
    "run.completed",
]


@dataclass
class Sample:
    accepted_ms: float  # A
    paused_ms: float  # B
    finished_ms: float  # C
    answer_404s: int = 0  # answers refused because the interaction was not yet recorded


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class ScenarioBroken(RuntimeError):
    """A run did not go the way the scenario says: the bench stops rather than time it."""


async def _start(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/runs", json=START)
    if response.status_code != 202:
        raise ScenarioBroken(f"POST /v1/runs: {response.status_code} {response.text}")
    return str(response.json()["run_id"])


async def _answer(client: httpx.AsyncClient, interaction_id: str) -> int:
    """Answer the moment the question is seen; how many times it was refused 404 first."""
    refused = 0
    deadline = time.monotonic() + WAIT_LIMIT_S
    while True:
        response = await client.post(
            f"/v1/interactions/{interaction_id}/respond", json={"response": ANSWER}
        )
        if response.status_code == 202:
            return refused
        if response.status_code != 404 or time.monotonic() > deadline:
            raise ScenarioBroken(f"respond: {response.status_code} {response.text}")
        refused += 1
        await asyncio.sleep(ANSWER_RETRY_S)


class TetherPolling:
    name = "tether_poll"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _poll(self, run_id: str, done: Any) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_LIMIT_S
        while time.monotonic() < deadline:
            response = await self.client.get(f"/v1/runs/{run_id}")
            if response.status_code != 200:
                raise ScenarioBroken(f"GET run: {response.status_code} {response.text}")
            run = response.json()
            if done(run):
                return run
            if run["status"] in {"failed", "cancelled", "timed_out"}:
                raise ScenarioBroken(f"run {run_id} ended {run['status']}: {run.get('error')}")
            await asyncio.sleep(POLL_S)
        raise ScenarioBroken(f"run {run_id} did not get there in {WAIT_LIMIT_S}s")

    async def run_once(self) -> Sample:
        t0 = time.perf_counter()
        run_id = await _start(self.client)
        accepted = _ms(t0)
        run = await self._poll(
            run_id,
            lambda r: r["status"] == "waiting_for_input" and r["pending_interaction"],
        )
        paused = _ms(t0)
        t1 = time.perf_counter()
        refused = await _answer(self.client, run["pending_interaction"]["interaction_id"])
        await self._poll(run_id, lambda r: r["status"] == "completed")
        return Sample(accepted, paused, _ms(t1), refused)


async def sse_events(
    client: httpx.AsyncClient, run_id: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """``(event, data)`` of the run's stream, as they arrive."""
    async with client.stream("GET", f"/v1/runs/{run_id}/stream", timeout=WAIT_LIMIT_S) as response:
        if response.status_code != 200:
            raise ScenarioBroken(f"stream: {response.status_code} {await response.aread()!r}")
        event, data = "message", ""
        async for line in response.aiter_lines():
            if line == "":
                if data:
                    yield event, json.loads(data)
                event, data = "message", ""
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()


class TetherStreaming:
    name = "tether_sse"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def run_once(self) -> Sample:
        t0 = time.perf_counter()
        run_id = await _start(self.client)
        accepted = _ms(t0)
        paused = 0.0
        t1 = 0.0
        refused = 0
        seen: list[str] = []
        async for event, data in sse_events(self.client, run_id):
            if event == "end":
                finished = _ms(t1)
                if data["status"] != "completed" or seen != TRANSCRIPT:
                    raise ScenarioBroken(f"run {run_id} ended {data} after {seen}")
                return Sample(accepted, paused, finished, refused)
            seen.append(event)
            if event == "interaction.requested":
                paused = _ms(t0)
                t1 = time.perf_counter()
                refused = await _answer(self.client, data["data"]["interaction_id"])
        raise ScenarioBroken(f"stream of {run_id} closed without end after {seen}")


class BareTemporal:
    name = "bare"

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client, self.task_queue = client, task_queue

    async def run_once(self) -> Sample:
        start = WithStartWorkflowOperation(
            BareScenarioWorkflow.run,
            id=f"bare-{uuid.uuid4().hex}",
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        t0 = time.perf_counter()
        await self.client.execute_update_with_start_workflow(
            BareScenarioWorkflow.submit, start_workflow_operation=start
        )
        accepted = _ms(t0)
        handle = await start.workflow_handle()
        await handle.execute_update(BareScenarioWorkflow.paused)
        paused = _ms(t0)
        t1 = time.perf_counter()
        await handle.signal(BareScenarioWorkflow.answer, ANSWER["option_id"])
        if await handle.result() != "ok":
            raise ScenarioBroken(f"bare workflow {handle.id} did not finish ok")
        return Sample(accepted, paused, _ms(t1))
