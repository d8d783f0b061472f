"""``tether dev``: the whole stack on embedded defaults, supervised in one terminal.

Temporal dev server (persistent SQLite, Web UI, search attributes registered), the store
migrated, then the runner, the worker and the API. Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from store import keys
from store.db import create_engine, migrate_store, session_factory
from tether.devstack.processes import Service, venv_binary, wait_http
from tether.devstack.temporal import DEV_SERVER_TUNING, search_attribute_flags
from tether.settings import Settings


def temporal_argv(settings: Settings, db_file: Path, *, ui: bool = True) -> list[str]:
    host, _, port = settings.temporal_address.rpartition(":")
    argv = [
        venv_binary("temporal"),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--ip",
        host or "127.0.0.1",
        "--port",
        port,
        "--log-level",
        "warn",
        *search_attribute_flags(),
        *DEV_SERVER_TUNING,
    ]
    argv += ["--ui-port", str(settings.temporal_ui_port)] if ui else ["--headless"]
    return argv


async def wait_temporal(settings: Settings, service: Service, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not service.running:
            raise RuntimeError(f"temporal exited:\n{service.tail()}")
        try:
            client = await Client.connect(settings.temporal_address)
            await client.service_client.check_health()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def app_services(settings: Settings, logs: Path) -> list[tuple[Service, str]]:
    """Runner, worker and API processes, each with the URL that says it is ready."""
    py = sys.executable
    api = f"http://{settings.api_host}:{settings.api_port}"
    return [
        (
            Service("runner", [py, "-m", "runner"], {}, logs / "runner.log"),
            settings.runner_base_url + "/healthz",
        ),
        (Service("worker", [py, "-m", "worker"], {}, logs / "worker.log"), ""),
        (
            Service(
                "api",
                [
                    py,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "api.main:app",
                    "--host",
                    settings.api_host,
                    "--port",
                    str(settings.api_port),
                    "--log-level",
                    "warning",
                ],
                {},
                logs / "api.log",
            ),
            f"{api}/readyz",
        ),
    ]


DEV_KEY_FILE = "dev-admin-key"
DEV_KEY_NAME = "dev-admin"


async def ensure_dev_key(settings: Settings) -> Path:
    """The dev stack's admin key of the default project, in ``<data dir>/dev-admin-key`` (mode
    0600): made on first start, and again if the store no longer accepts the one on file."""
    path = settings.data_dir.resolve() / DEV_KEY_FILE
    if path.is_file():
        token = path.read_text().strip()
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                valid = await keys.find_valid_key(session, token, datetime.now(UTC))
        finally:
            await engine.dispose()
        if valid is not None:
            return path
    _, token = await keys.create_key_in_store(
        settings.database_url,
        settings.default_project_id,
        name=DEV_KEY_NAME,
        role=keys.Role.ADMIN,
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    path.chmod(0o600)  # an older file may have had looser bits
    return path


def banner(settings: Settings, logs: Path, key_file: Path) -> str:
    api = f"http://{settings.api_host}:{settings.api_port}"
    ui_host = settings.temporal_address.rpartition(":")[0] or "127.0.0.1"
    token = key_file.read_text().strip()
    return f"""
Tether is running.
  API docs     {api}/docs
  Temporal UI  http://{ui_host}:{settings.temporal_ui_port}
  Logs         {logs}/
  Admin key    {token}
               (in {key_file}; the tether CLI finds it there)
Try:
  export TETHER_API_KEY=$(cat {key_file})
  curl -s -X POST {api}/v1/runs -H "Authorization: Bearer $TETHER_API_KEY" \\
       -H 'content-type: application/json' \\
       -d '{{"agent": "approval-demo", "input": "clean the build folder"}}'
Ctrl-C stops everything.
"""


async def run_dev(settings: Settings) -> None:
    data = settings.data_dir.resolve()
    logs = data / "logs"
    data.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    temporal = Service(
        "temporal", temporal_argv(settings, data / "temporal.db"), {}, logs / "temporal.log"
    )
    services = [temporal]
    try:
        print(f"starting Temporal dev server on {settings.temporal_address} ...", flush=True)
        temporal.start()
        await wait_temporal(settings, temporal)
        print(f"migrating the store at {settings.database_url} ...", flush=True)
        await migrate_store(settings.database_url, settings.default_project_id)
        key_file = await ensure_dev_key(settings)
        for service, ready_url in app_services(settings, logs):
            print(f"starting {service.name} ...", flush=True)
            services.append(service.start())
            if ready_url:
                await wait_http(ready_url, service)
        print(banner(settings, logs, key_file), flush=True)
        while not stop.is_set():
            dead = [s for s in services if not s.running]
            if dead:
                print(f"{dead[0].name} exited; see {dead[0].log_path}\n{dead[0].tail(20)}")
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        print("stopping ...", flush=True)
        for service in reversed(services):
            service.stop()
        print("stopped.", flush=True)
