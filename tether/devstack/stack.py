"""The real stack for end-to-end tests and ``bench/``: runner, worker and API processes on free
ports, talking to a real Temporal dev server and a real database. Nothing is mocked."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from store.db import migrate
from store.keys import Role, create_key_in_store
from tether.codec import new_key_entry
from tether.devstack.processes import Service, api_argv, free_port, wait_http
from tether.devstack.temporal import start_temporal
from tether.secret_box import new_key
from tether.settings import Settings
from tether.temporal import data_converter

# Stacks encrypt payloads as a deployment would, with a key made for this process: its own
# Temporal clients decrypt with it (``stack_data_converter``), and its child processes get it
# in their environment.
TEST_PAYLOAD_KEYS = new_key_entry("test")

# Short bounds so failure paths finish quickly in tests.
TEST_SETTINGS = {
    "TETHER_ACCEPT_WAIT_S": "5",
    "TETHER_DISPATCH_DEADLINE_S": "20",
    "TETHER_RUNNER_LOST_TIMEOUT_S": "3",
    "TETHER_FOLLOW_HEARTBEAT_TIMEOUT_S": "2",
    "TETHER_RUNNER_KEEPALIVE_S": "0.5",
    "TETHER_CANCEL_GRACE_S": "3",
    "TETHER_WAITING_PROBE_S": "1",
    "TETHER_API_STREAM_POLL_S": "0.05",
    "TETHER_WORKER_METRICS_PORT": "0",  # tests that scrape it pick a free port
    # As under `tether dev`: tests read /metrics and /openapi.json.
    "TETHER_API_DOCS": "true",
    "TETHER_API_METRICS": "true",
    "TETHER_PAYLOAD_KEYS": TEST_PAYLOAD_KEYS,
}


def stack_data_converter(payload_keys: str = TEST_PAYLOAD_KEYS) -> DataConverter:
    """The data converter of processes configured with ``payload_keys`` (empty: no codec)."""
    return data_converter(Settings(payload_keys=SecretStr(payload_keys)))


@asynccontextmanager
async def standalone_stack(
    *, short_bounds: bool = True, **settings: str
) -> AsyncIterator[tuple[WorkflowEnvironment, Stack]]:
    """Temporal plus a started stack on a fresh SQLite store, for scripts (bench, recorders);
    ``settings`` (``TETHER_*`` variables) go to the stack's processes, and ``short_bounds`` says
    whether they run on ``TEST_SETTINGS`` (see ``Stack``)."""
    keys = settings.get("TETHER_PAYLOAD_KEYS", TEST_PAYLOAD_KEYS)
    env = await start_temporal(stack_data_converter(keys))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'tether.db'}"
            await migrate(url)
            stack = Stack(
                temporal_address=env.client.service_client.config.target_host,
                database_url=url,
                workdir=Path(tmp),
                short_bounds=short_bounds,
                **settings,
            )
            await stack.start()
            try:
                yield env, stack
            finally:
                stack.stop()
    finally:
        await env.shutdown()


class Stack:
    """One runner, one worker and one API, on their own task queue and database.

    ``short_bounds`` applies ``TEST_SETTINGS``; without it the processes run on the settings'
    defaults, as ``make run`` does (the bench)."""

    def __init__(
        self,
        *,
        temporal_address: str,
        database_url: str,
        workdir: Path,
        short_bounds: bool = True,
        **settings: str,
    ) -> None:
        self.runner_port, self.api_port = free_port(), free_port()
        self.task_queue = f"tq-{uuid.uuid4().hex[:10]}"
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.runner_url = f"http://127.0.0.1:{self.runner_port}"
        self.database_url = database_url
        self.project_id = settings.get("TETHER_DEFAULT_PROJECT_ID", "default")
        self.api_key = ""  # the admin key of ``project_id``, made by ``start``
        self.env = {
            **(TEST_SETTINGS if short_bounds else {}),
            "TETHER_TEMPORAL_ADDRESS": temporal_address,
            "TETHER_DATABASE_URL": database_url,
            "TETHER_TASK_QUEUE": self.task_queue,
            "TETHER_RUNNER_PORT": str(self.runner_port),
            "TETHER_API_PORT": str(self.api_port),
            "TETHER_DATA_DIR": str(workdir),
            "TETHER_SECRETS_KEY": new_key(),
            **settings,
        }
        py = sys.executable
        logs = workdir / "logs"
        self.runner = Service("runner", [py, "-m", "runner"], self.env, logs / "runner.log")
        self.worker = Service("worker", [py, "-m", "worker"], self.env, logs / "worker.log")
        self.api = Service("api", api_argv("127.0.0.1", self.api_port), self.env, logs / "api.log")

    async def start(self) -> Stack:
        if not self.api_key:
            self.api_key = await self.create_key(Role.ADMIN, name="stack-admin")
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

    def data_converter(self) -> DataConverter:
        """What a Temporal client needs to read this stack's payloads."""
        return stack_data_converter(self.env["TETHER_PAYLOAD_KEYS"])

    async def create_key(
        self,
        role: Role,
        *,
        name: str,
        project_id: str | None = None,
        expires_at: datetime | None = None,
    ) -> str:
        """A new key of ``project_id`` (default: the stack's project, created if new), made
        straight in the store; returns its token."""
        _, token = await create_key_in_store(
            self.database_url,
            project_id or self.project_id,
            name=name,
            role=role,
            expires_at=expires_at,
        )
        return token

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        """An HTTP client of the API sending ``api_key`` (default: the stack's admin key)."""
        token = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=30.0)

    def logs(self) -> str:
        return "\n".join(
            f"--- {s.name}\n{s.tail(60)}" for s in (self.runner, self.worker, self.api)
        )
