"""``tether dev``: the whole stack on embedded defaults, supervised in one terminal.

Temporal dev server (persistent SQLite, Web UI, search attributes registered), the store
migrated, then the runner, the worker and the API. A child that exits is restarted with
backoff while the others keep running; Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from store import keys
from store.db import create_engine, migrate_store, session_factory
from tether.codec import PayloadKeys, new_key_entry
from tether.devstack.dev_secrets import with_dev_secrets
from tether.devstack.processes import Service, api_argv, venv_binary, wait_http
from tether.devstack.temporal import DEV_SERVER_TUNING, search_attribute_flags
from tether.secret_box import SecretBox
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
    if ui:
        # The UI shows payloads in clear through the API's codec endpoint (api/routes/codec.py).
        argv += ["--ui-port", str(settings.temporal_ui_port)]
        argv += ["--ui-codec-endpoint", f"{settings.public_api_url.rstrip('/')}/codec"]
    else:
        argv += ["--headless"]
    return argv


def dev_payload_keys(settings: Settings, data: Path) -> dict[str, str]:
    """The dev stack encrypts payloads: with ``TETHER_PAYLOAD_KEYS`` if set, else with a key it
    generates into ``data/payload-keys`` on first start and reuses after. Answers the
    environment the child processes need (empty when the setting is already there)."""
    if settings.payload_keys.get_secret_value():
        return {}
    path = data / "payload-keys"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(new_key_entry("dev-1") + "\n")
    keys = path.read_text().strip()
    PayloadKeys.parse(keys)  # a hand-edited file that is malformed fails here, clearly
    return {"TETHER_PAYLOAD_KEYS": keys}


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


def app_services(
    settings: Settings,
    logs: Path,
    env: dict[str, str] | None = None,
    temporal_env: dict[str, str] | None = None,
) -> list[tuple[Service, str]]:
    """Runner, worker and API processes, each with the URL that says it is ready. ``env`` is
    added to each one's environment; ``temporal_env`` (the payload keys) only to the processes
    that talk to Temporal (worker and API)."""
    env = env or {}
    with_temporal = {**env, **(temporal_env or {})}
    py = sys.executable
    api = f"http://{settings.api_host}:{settings.api_port}"
    return [
        (
            Service("runner", [py, "-m", "runner"], env, logs / "runner.log"),
            settings.runner_base_url + "/healthz",
        ),
        (Service("worker", [py, "-m", "worker"], with_temporal, logs / "worker.log"), ""),
        (
            Service(
                "api",
                api_argv(settings.api_host, settings.api_port),
                with_temporal,
                logs / "api.log",
            ),
            f"{api}/readyz",
        ),
    ]


def dev_stack_switches(settings: Settings) -> dict[str, str]:
    """On the dev stack the API serves /docs and /metrics, and its Temporal UI may decode
    payloads without a key, unless the user said otherwise."""
    switches = {
        "api_docs": "TETHER_API_DOCS",
        "api_metrics": "TETHER_API_METRICS",
        "codec_open": "TETHER_CODEC_OPEN",
    }
    return {
        env: "true" for field, env in switches.items() if field not in settings.model_fields_set
    }


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
    metrics = (
        f"http://{settings.worker_metrics_host}:{settings.worker_metrics_port}/metrics"
        if settings.worker_metrics_port
        else "off"
    )
    codec = settings.public_api_url.rstrip("/") + "/codec"
    return f"""
Tether is running.
  API          {api}  (docs: {api}/docs)
  Runner       {settings.runner_base_url}
  Temporal     {settings.temporal_address}  (UI: http://{ui_host}:{settings.temporal_ui_port};
               payloads are encrypted; it decodes them through {codec})
  Worker       metrics {metrics}
  Logs         {logs}/
  Admin key    {token}
               (in {key_file}; the tether CLI finds it there)
Try:
  export TETHER_API_KEY=$(cat {key_file})
  curl -s -X POST {api}/v1/runs -H "Authorization: Bearer $TETHER_API_KEY" \\
       -H 'content-type: application/json' \\
       -d '{{"agent": "approval-demo", "input": "clean the build folder"}}'
A process that exits is restarted. Ctrl-C stops everything.
"""


# Restart policy: wait BACKOFF_FIRST_S after a crash, doubling up to BACKOFF_MAX_S while a
# child keeps crashing; a child that ran STABLE_S before it crashed starts again from the first.
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
STABLE_S = 30.0


async def supervise(
    service: Service, ready: Callable[[], Awaitable[None]] | None, stop: asyncio.Event
) -> None:
    """Keep ``service`` running until ``stop``: restart it with backoff whenever it exits.

    The other children keep running meanwhile; each reconnects to a restarted one by itself
    (the Temporal client, the runner client and the store pool all do).
    """
    backoff = BACKOFF_FIRST_S
    started = time.monotonic()
    while not stop.is_set():
        if service.running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            continue
        code = service.proc.returncode if service.proc else None
        if time.monotonic() - started >= STABLE_S:
            backoff = BACKOFF_FIRST_S
        print(
            f"{service.name} exited (code {code}); restarting it in {backoff:g}s. "
            f"Its log: {service.log_path}\n{service.tail(10)}",
            flush=True,
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
        if stop.is_set():
            return
        backoff = min(backoff * 2, BACKOFF_MAX_S)
        started = time.monotonic()
        service.start()
        try:
            if ready is not None:
                await ready()
        except Exception as err:  # it died again, or never answered: the loop sees to it
            print(f"{service.name} did not come back: {err}", flush=True)
            continue
        print(f"{service.name} restarted.", flush=True)


def _http_ready(url: str, service: Service) -> Callable[[], Awaitable[None]]:
    return lambda: wait_http(url, service, timeout=60.0)


async def run_dev(settings: Settings) -> None:
    data = settings.data_dir.resolve()
    logs = data / "logs"
    data.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # The dev server keeps its state in this file: a restarted server finds every workflow,
    # timer and schedule where the crashed one left them.
    temporal = Service(
        "temporal", temporal_argv(settings, data / "temporal.db"), {}, logs / "temporal.log"
    )
    supervised: list[tuple[Service, Callable[[], Awaitable[None]] | None]] = [
        (temporal, lambda: wait_temporal(settings, temporal))
    ]
    services = [temporal]
    watchers: list[asyncio.Task[None]] = []
    try:
        print(f"starting Temporal dev server on {settings.temporal_address} ...", flush=True)
        temporal.start()
        await wait_temporal(settings, temporal)
        settings, secrets_env = with_dev_secrets(settings, create=True)
        print(f"migrating the store at {settings.database_url} ...", flush=True)
        box = SecretBox.from_settings(settings)
        await migrate_store(settings.database_url, settings.default_project_id, box)
        key_file = await ensure_dev_key(settings)
        env = {**dev_stack_switches(settings), **secrets_env}
        temporal_env = dev_payload_keys(settings, data)
        for service, ready_url in app_services(settings, logs, env, temporal_env):
            print(f"starting {service.name} ...", flush=True)
            services.append(service.start())
            supervised.append((service, _http_ready(ready_url, service) if ready_url else None))
            if ready_url:
                await wait_http(ready_url, service)
        print(banner(settings, logs, key_file), flush=True)
        watchers = [asyncio.create_task(supervise(s, ready, stop)) for s, ready in supervised]
        await stop.wait()
    finally:
        stop.set()
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        print("stopping ...", flush=True)
        for service in reversed(services):
            service.stop()
        print("stopped.", flush=True)
