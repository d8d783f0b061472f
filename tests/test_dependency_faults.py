"""A dependency that fails is a 503 with ``Retry-After``, answered within a bounded time, never a
500 or a hang: the Temporal server stopped (a dev server of this test's own), the store
unreachable (a PostgreSQL database of this test's own, its connections refused)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.api_helpers import sse_events, wait_for_pending_interaction, wait_for_run
from tests.fixtures_db import migrated_database, require_postgres
from tether.devstack.stack import Stack
from tether.devstack.temporal import start_temporal

# A hang guard, not a performance claim: a dependency that is down must not hold a request
# for longer than this (the API bounds its Temporal calls at a few seconds).
ANSWER_BOUND_S = 20.0


def _unavailable(response: httpx.Response, code: str) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"]["code"] == code, body
    assert int(response.headers["Retry-After"]) >= 1


async def _timed(request) -> tuple[httpx.Response, float]:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    response = await request
    return response, time.monotonic() - started


@pytest.fixture
async def temporal_stack(tmp_path: Path) -> AsyncIterator[tuple[object, Stack]]:
    """A stack on a Temporal dev server of its own, which the test may stop."""
    env = await start_temporal()
    try:
        async with migrated_database("sqlite", tmp_path) as url:
            stack = Stack(
                temporal_address=env.client.service_client.config.target_host,
                database_url=url,
                workdir=tmp_path,
            )
            try:
                await stack.start()
                yield env, stack
            finally:
                stack.stop()
    finally:
        await env.shutdown()


async def test_temporal_down_is_503_within_a_bound(temporal_stack) -> None:  # type: ignore[no-untyped-def]
    env, stack = temporal_stack
    async with stack.client() as client:
        waiting = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, waiting["run_id"])
        schedule = await client.post(
            "/v1/triggers",
            json={
                "name": "t-down",
                "kind": "schedule",
                "schedule": {"interval_s": 3600},
                "target": {"agent": "echo", "input": "tick"},
            },
        )
        assert schedule.status_code == 201, schedule.text
        trigger_id = schedule.json()["trigger_id"]

        await env.shutdown()  # the Temporal server is gone

        session = f"down-{uuid.uuid4().hex[:6]}"
        calls = {
            "start": client.post("/v1/runs", json={"agent": "echo", "input": "x"}),
            "start in session": client.post(
                f"/v1/sessions/{session}/runs", json={"agent": "echo", "wait": "none"}
            ),
            "respond": client.post(
                f"/v1/interactions/{interaction['interaction_id']}/respond",
                json={"response": {"option_id": "allow"}},
            ),
            "cancel": client.post(f"/v1/runs/{waiting['run_id']}/cancel"),
            "fire now": client.post(f"/v1/triggers/{trigger_id}/fire"),
            "pause": client.post(f"/v1/triggers/{trigger_id}/pause"),
            "create schedule": client.post(
                "/v1/triggers",
                json={
                    "name": "t-down-2",
                    "kind": "schedule",
                    "schedule": {"interval_s": 3600},
                    "target": {"agent": "echo", "input": "tick"},
                },
            ),
        }
        for name, request in calls.items():
            response, took = await _timed(request)
            _unavailable(response, "temporal_unavailable")
            assert took < ANSWER_BOUND_S, name

        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["store"] == "ok"
        # Reads come from the store and keep working.
        assert (await client.get(f"/v1/runs/{waiting['run_id']}")).status_code == 200
        still = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert still["status"] == "pending"
        # Nothing was left half-made: no session, no trigger without its schedule.
        assert (await client.get(f"/v1/sessions/{session}")).status_code == 404
        names = [t["name"] for t in (await client.get("/v1/triggers")).json()["triggers"]]
        assert names == ["t-down"]


@pytest.fixture
async def pg_stack(temporal_address: str, tmp_path: Path) -> AsyncIterator[tuple[str, Stack]]:
    """A stack on a PostgreSQL database of its own, which the test may make unreachable."""
    async with migrated_database("postgres", tmp_path) as url:
        stack = Stack(temporal_address=temporal_address, database_url=url, workdir=tmp_path)
        try:
            await stack.start()
            yield url, stack
        finally:
            stack.stop()


async def _set_reachable(database_url: str, reachable: bool) -> None:
    """Refuse (or allow again) connections to this one test database, and drop the open ones:
    the PostgreSQL server itself keeps running for everyone else."""
    name = make_url(database_url).database
    admin = await asyncpg.connect(await require_postgres())
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(reachable).lower()}')
        if not reachable:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
    finally:
        await admin.close()


async def test_store_unreachable_is_503_within_a_bound(pg_stack) -> None:  # type: ignore[no-untyped-def]
    url, stack = pg_stack
    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "echo", "input": "hi"})).json()
        await wait_for_run(client, run["run_id"], {"completed"})
        waiting = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        await wait_for_pending_interaction(client, waiting["run_id"])
        streamed: list[tuple[str | None, str, str]] = []

        async def read() -> None:
            async for event in sse_events(client, waiting["run_id"]):
                streamed.append(event)

        reader = asyncio.create_task(read())
        while not streamed:
            await asyncio.sleep(0.05)

        await _set_reachable(url, False)
        try:
            # An open stream ends with a reconnect event, not a cut connection.
            await asyncio.wait_for(reader, ANSWER_BOUND_S)
            _, event_type, data = streamed[-1]
            assert event_type == "reconnect"
            assert json.loads(data)["reason"] == "store_unavailable"

            calls = {
                "list": client.get("/v1/runs"),
                "read": client.get(f"/v1/runs/{run['run_id']}"),
                "events": client.get(f"/v1/runs/{run['run_id']}/events"),
                "stream": client.get(f"/v1/runs/{run['run_id']}/stream"),
                "start": client.post("/v1/runs", json={"agent": "echo", "input": "x"}),
                "sessions": client.get("/v1/sessions"),
                "triggers": client.get("/v1/triggers"),
            }
            for name, request in calls.items():
                response, took = await _timed(request)
                _unavailable(response, "store_unavailable")
                assert took < ANSWER_BOUND_S, name
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["store"] != "ok"
        finally:
            await _set_reachable(url, True)

        # Back: the pool reconnects, nothing to restart.
        response = await client.get(f"/v1/runs/{run['run_id']}")
        assert response.status_code == 200
        assert response.json()["status"] == "completed"
