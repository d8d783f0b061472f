"""The runner token: every runner route refuses a call without an accepted token, a rotation
accepts two tokens at once, and the runner will not start reachable with the dev token."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from runner.app import create_app
from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tests.fixtures_db import migrated_database
from tests.test_runner import TOKEN, new_run, serve_runner
from tether.devstack.stack import Stack
from tether.settings import DEV_RUNNER_TOKEN, Settings

OLD, NEW = "the-old-runner-token-0123456789", "the-new-runner-token-9876543210"


def runner_routes() -> list[tuple[str, str]]:
    """Every route of the runner's protocol, path parameters filled in: (method, path)."""
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    routes = []
    for path, operations in app.openapi()["paths"].items():
        filled = path.replace("{run_id}", "run_x").replace("{interaction_id}", "int_x")
        routes += [(method.upper(), filled) for method in operations if path.startswith("/v1")]
    return routes


ROUTES = runner_routes()


def test_every_protocol_route_is_covered() -> None:
    # The table below is built from the app; this guards against it quietly going empty.
    assert {path for _, path in ROUTES} >= {
        "/v1/runs",
        "/v1/runs/run_x",
        "/v1/runs/run_x/events",
        "/v1/runs/run_x/cancel",
        "/v1/runs/run_x/interactions/int_x",
        "/v1/agents",
    }


@pytest.fixture(scope="module")
async def rotating_runner() -> AsyncIterator[str]:
    """A runner in the middle of a rotation: it accepts TOKEN and, still, OLD."""
    async with serve_runner(runner_previous_tokens=OLD) as url:
        yield url


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer nope", f"Bearer {NEW}", f"Basic {TOKEN}", "Bearer", DEV_RUNNER_TOKEN],
    ids=["missing", "wrong", "never-accepted", "not-bearer", "empty", "bare-dev-token"],
)
async def test_every_runner_route_needs_an_accepted_token(
    rotating_runner: str, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=rotating_runner) as http:
        response = await http.request(method, path, headers=headers, json=new_run("echo"))

    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [TOKEN, OLD], ids=["current", "previous"])
async def test_current_and_previous_tokens_are_accepted(
    rotating_runner: str, method: str, path: str, token: str
) -> None:
    async with httpx.AsyncClient(base_url=rotating_runner) as http:
        response = await http.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, json=new_run("echo")
        )

    assert response.status_code != 401, response.text


async def test_only_the_health_check_is_open(rotating_runner: str) -> None:
    async with httpx.AsyncClient(base_url=rotating_runner) as http:
        health = await http.get("/healthz")
        schema = [(await http.get(p)).status_code for p in ("/docs", "/openapi.json", "/redoc")]

    assert health.status_code == 200
    assert schema == [404, 404, 404]


async def test_a_token_removed_from_the_accepted_set_is_refused() -> None:
    # The rotation has ended: the runner was restarted without the previous token.
    async with (
        serve_runner() as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        old = await http.get("/v1/agents", headers={"Authorization": f"Bearer {OLD}"})
        current = await http.get("/v1/agents", headers={"Authorization": f"Bearer {TOKEN}"})

    assert old.status_code == 401
    assert current.status_code == 200


def start_runner(**env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runner`` with ``env``; only refusals return (within the timeout)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    return subprocess.run(
        [sys.executable, "-m", "runner"],
        env={**clean, "TETHER_RUNNER_PORT": "0", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "env",
    [
        {"TETHER_RUNNER_HOST": "0.0.0.0"},
        {"TETHER_RUNNER_HOST": "10.1.2.3", "TETHER_RUNNER_TOKEN": DEV_RUNNER_TOKEN},
        {
            "TETHER_RUNNER_HOST": "0.0.0.0",
            "TETHER_RUNNER_TOKEN": NEW,
            "TETHER_RUNNER_PREVIOUS_TOKENS": DEV_RUNNER_TOKEN,
        },
    ],
    ids=["default-token", "dev-token-set", "dev-token-as-previous"],
)
def test_runner_refuses_the_dev_token_beyond_loopback(env: dict[str, str]) -> None:
    refused = start_runner(**env)

    assert refused.returncode == 2
    assert "refusing to start" in refused.stderr
    assert "TETHER_RUNNER_TOKEN" in refused.stderr


def test_runner_refuses_an_empty_token() -> None:
    refused = start_runner(TETHER_RUNNER_TOKEN=" ")

    assert refused.returncode == 2
    assert "TETHER_RUNNER_TOKEN is empty" in refused.stderr


async def test_rotation_keeps_a_waiting_run_going(temporal_address: str, tmp_path: Path) -> None:
    """Runner accepts NEW and OLD; the worker starts with OLD, is restarted with NEW while a
    run waits for its answer, and the run still ends normally."""
    async with migrated_database("sqlite", tmp_path) as url:
        stack = Stack(
            temporal_address=temporal_address,
            database_url=url,
            workdir=tmp_path,
            TETHER_RUNNER_TOKEN=NEW,
            TETHER_RUNNER_PREVIOUS_TOKENS=OLD,
        )
        worker_env = {k: v for k, v in stack.env.items() if k != "TETHER_RUNNER_PREVIOUS_TOKENS"}
        stack.worker.env = {**worker_env, "TETHER_RUNNER_TOKEN": OLD}
        try:
            await stack.start()  # the agent catalogue synced with OLD
            async with stack.client() as client:
                started = await client.post(
                    "/v1/runs", json={"agent": "approval-demo", "input": "rotate"}
                )
                assert started.status_code == 202, started.text
                run_id = started.json()["run_id"]
                interaction = await wait_for_pending_interaction(client, run_id)

                stack.worker.stop()
                stack.worker.env = {**worker_env, "TETHER_RUNNER_TOKEN": NEW}
                await stack.restart_worker()
                answer = await client.post(
                    f"/v1/interactions/{interaction['interaction_id']}/respond",
                    json={"response": {"option_id": "allow"}},
                )
                assert answer.status_code == 202, answer.text
                done = await wait_for_run(client, run_id, {"completed", "failed", "cancelled"})

            assert done["status"] == "completed", (done, stack.logs())
        finally:
            stack.stop()
