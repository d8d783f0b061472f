"""``tether dev`` supervises: a child that dies is restarted with backoff while the others keep
running, Temporal's state survives its restart (the dev server's file is kept), and SIGTERM
stops everything. The real command, as a subprocess, on free ports in a temporary data dir."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.processes import free_port, wait_http


@dataclass
class DevStack:
    proc: subprocess.Popen[bytes]
    console: Path
    api_url: str
    data_dir: Path

    def client(self) -> httpx.AsyncClient:
        """A client of the stack's API with the admin key ``tether dev`` made on first start."""
        token = (self.data_dir / "dev-admin-key").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.AsyncClient(base_url=self.api_url, headers=headers, timeout=30)

    def output(self) -> str:
        return self.console.read_text(errors="replace")

    def child(self, marker: str) -> int:
        """The PID of the supervisor's child whose command line contains ``marker``."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid and marker in cmdline:
                return int(entry.name)
        raise LookupError(f"no child {marker!r} of {self.proc.pid}:\n{self.output()}")

    async def wait_for_agent(self, name: str, timeout: float = 60.0) -> None:
        """Until the worker's first catalogue sync offers ``name`` (a loaded machine may be
        slower to sync than the API is to answer)."""
        deadline = time.monotonic() + timeout
        async with self.client() as client:
            while True:
                agents = (await client.get("/v1/agents")).json().get("agents", [])
                if any(a["name"] == name and a["available"] for a in agents):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no agent {name!r} offered:\n{self.output()}")
                await asyncio.sleep(0.2)

    async def wait_output(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc.poll() is None, f"tether dev exited:\n{self.output()}"
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not printed:\n{self.output()}")
            await asyncio.sleep(0.1)


def _spawn(argv: list[str], env: dict[str, str], console: Path) -> subprocess.Popen[bytes]:
    with console.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


@pytest.fixture
async def dev_stack(tmp_path: Path) -> AsyncIterator[DevStack]:
    api_port = free_port()
    argv = [sys.executable, "-m", "tether", "dev", "--data-dir", str(tmp_path / "data")]
    argv += ["--api-port", str(api_port), "--runner-port", str(free_port())]
    argv += ["--temporal-port", str(free_port()), "--ui-port", str(free_port())]
    argv += ["--metrics-port", "0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    console = tmp_path / "console.log"
    proc = _spawn(argv, env, console)
    stack = DevStack(proc, console, f"http://127.0.0.1:{api_port}", tmp_path / "data")
    try:
        await stack.wait_output("Tether is running.", timeout=120)
        await stack.wait_for_agent("approval-demo")
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _post_until_accepted(client: httpx.AsyncClient, url: str, body: dict) -> httpx.Response:
    """Right after a restart Temporal may still be coming up: 503 says retry, so retry."""
    deadline = time.monotonic() + 60
    while True:
        response = await client.post(url, json=body)
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))


async def test_a_crashed_child_is_restarted_and_the_rest_keeps_running(
    dev_stack: DevStack,
) -> None:
    async with dev_stack.client() as client:
        assert "Runner       http://127.0.0.1:" in dev_stack.output()
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        api_pid = dev_stack.child("api.main:app")

        # Temporal dies with a run waiting in it: it comes back on its file, the run still waits.
        os.kill(dev_stack.child("start-dev"), signal.SIGKILL)
        await dev_stack.wait_output("temporal exited")
        await dev_stack.wait_output("temporal restarted.")
        answered = await _post_until_accepted(
            client,
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            {"response": {"option_id": "allow"}},
        )
        assert answered.status_code == 202, answered.text
        done = await wait_for_run(client, run["run_id"], {"completed", "failed"}, timeout=60)
        assert done["status"] == "completed", dev_stack.output()

        # The worker dies: restarted, and the next run is served.
        os.kill(dev_stack.child("-m worker"), signal.SIGKILL)
        await dev_stack.wait_output("worker exited")
        await dev_stack.wait_output("worker restarted.")
        started = await _post_until_accepted(client, "/v1/runs", {"agent": "echo", "input": "hi"})
        assert started.status_code == 202, started.text
        await wait_for_run(client, started.json()["run_id"], {"completed"}, timeout=60)

        assert dev_stack.child("api.main:app") == api_pid  # the rest kept running
        await wait_http(f"{dev_stack.api_url}/readyz")

    dev_stack.proc.send_signal(signal.SIGTERM)
    assert dev_stack.proc.wait(60) == 0
    assert "stopped." in dev_stack.output()
