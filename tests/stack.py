"""The real stack for end-to-end tests: runner, worker and API processes on free ports,
talking to a real Temporal dev server and a real database. Nothing is mocked."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from temporalio.testing import WorkflowEnvironment

from store.db import migrate
from tether.devstack.processes import Service, free_port, wait_http
from tether.devstack.temporal import start_temporal

# Short bounds so failure paths finish quickly in tests.
TEST_SETTINGS = {
    "TETHER_ACCEPT_WAIT_S": "5",
    "TETHER_DISPATCH_DEADLINE_S": "20",
    "TETHER_RUNNER_LOST_TIMEOUT_S": "3",
    "TETHER_FOLLOW_HEARTBEAT_TIMEOUT_S": "2",
    "TETHER_RUNNER_KEEPALIVE_S": "0.5",
    "TETHER_CANCEL_GRACE_S": "3",
    "TETHER_API_STREAM_POLL_S": "0.05",
    "TETHER_WORKER_METRICS_PORT": "0",  # tests that scrape it pick a free port
}


@asynccontextmanager
async def standalone_stack() -> AsyncIterator[tuple[WorkflowEnvironment, Stack]]:
    """Temporal plus a started stack on a fresh SQLite store, for scripts (bench, recorders)."""
    env = await start_temporal()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'tether.db'}"
            await migrate(url)
            stack = Stack(
                temporal_address=env.client.service_client.config.target_host,
                database_url=url,
                workdir=Path(tmp),
            )
            await stack.start()
            try:
                yield env, stack
            finally:
                stack.stop()
    finally:
        await env.shutdown()


class Stack:
    """One runner, one worker and one API, on their own task queue and database."""

    def __init__(
        self, *, temporal_address: str, database_url: str, workdir: Path, **settings: str
    ) -> None:
        self.runner_port, self.api_port = free_port(), free_port()
        self.task_queue = f"tq-{uuid.uuid4().hex[:10]}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.runner_url = f"http://127.0.0.1:{self.runner_port}"
        self.database_url = database_url
        self.env = {
            **TEST_SETTINGS,
            "TETHER_TEMPORAL_ADDRESS": temporal_address,
            "TETHER_DATABASE_URL": database_url,
            "TETHER_TASK_QUEUE": self.task_queue,
            "TETHER_RUNNER_PORT": str(self.runner_port),
            "TETHER_API_PORT": str(self.api_port),
            "TETHER_DATA_DIR": str(workdir),
            **settings,
        }
        py = sys.executable
        logs = workdir / "logs"
        self.runner = Service("runner", [py, "-m", "runner"], self.env, logs / "runner.log")
        self.worker = Service("worker", [py, "-m", "worker"], self.env, logs / "worker.log")
        self.api = Service(
            "api",
            [
                py,
                "-m",
                "uvicorn",
                "--factory",
                "api.main:app",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
            self.env,
            logs / "api.log",
        )

    async def start(self) -> Stack:
        await self.start_runner()
        self.worker.start()
        self.api.start()
        await wait_http(f"{self.api_url}/readyz", self.api)
        await self.wait_for_agents()
        return self

    async def start_runner(self) -> None:
        self.runner.start()
        await wait_http(f"{self.runner_url}/healthz", self.runner)

    async def restart_worker(self) -> None:
        self.worker.start()

    async def wait_for_agents(self, timeout: float = 30.0) -> None:
        """The worker syncs the runner's agents into the store; wait until the API sees them."""
        async with self.client() as client:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self.worker.running:
                    raise RuntimeError(f"worker exited:\n{self.worker.tail()}")
                agents = (await client.get("/v1/agents")).json()["agents"]
                if agents:
                    return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"no agents in the catalogue\n{self.worker.tail()}")

    def stop(self) -> None:
        for service in (self.api, self.worker, self.runner):
            service.stop()

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, timeout=30.0)

    def logs(self) -> str:
        return "\n".join(
            f"--- {s.name}\n{s.tail(60)}" for s in (self.runner, self.worker, self.api)
        )


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
