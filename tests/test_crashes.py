"""Crashes: a worker SIGKILLed mid-run, a runner killed mid-run, no runner at all."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.api_helpers import start_streaming_run, wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack

FINAL = {"completed", "failed", "cancelled", "timed_out"}


async def test_worker_sigkill_mid_run_loses_and_duplicates_nothing(own_stack: Stack) -> None:
    async with own_stack.client() as client:
        run_id = await start_streaming_run(client, 60)
        # Let it stream for a while, then kill the worker without warning.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = (await client.get(f"/v1/runs/{run_id}/events")).json()["events"]
            if len(events) >= 10:
                break
            await asyncio.sleep(0.05)
        own_stack.worker.kill()
        await asyncio.sleep(1.0)
        await own_stack.restart_worker()

        done = await wait_for_run(client, run_id, FINAL, timeout=60)
        assert done["status"] == "completed", own_stack.logs()
        events = (await client.get(f"/v1/runs/{run_id}/events")).json()["events"]
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1))
        text = "".join(e["data"]["text"] for e in events if e["type"] == "message.delta")
        assert text == "".join(f"{i} " for i in range(60))


async def test_runner_killed_mid_run_fails_with_runner_lost(own_stack: Stack) -> None:
    bound = float(own_stack.env["TETHER_RUNNER_LOST_TIMEOUT_S"])
    heartbeat = float(own_stack.env["TETHER_FOLLOW_HEARTBEAT_TIMEOUT_S"])
    async with own_stack.client() as client:
        started = await client.post(
            "/v1/runs",
            json={"agent": "scripted", "input": {"steps": [{"sleep": 60}, {"output": "never"}]}},
        )
        run_id = started.json()["run_id"]
        await wait_for_run(client, run_id, {"running"})
        own_stack.runner.kill()
        killed_at = time.monotonic()
        done = await wait_for_run(client, run_id, FINAL, timeout=60)
        elapsed = time.monotonic() - killed_at
        assert done["status"] == "failed", done
        assert done["status_reason"] == "runner_lost"
        assert "unreachable" in done["error"]["message"]
        # The configured bound, plus reconnect backoff and the record round trips.
        assert elapsed < bound + heartbeat + 5, elapsed
        running = (await client.get("/v1/runs", params={"status": "running"})).json()["runs"]
        assert run_id not in [r["run_id"] for r in running]


async def test_runner_restarted_forgets_the_run_fails_fast(own_stack: Stack) -> None:
    async with own_stack.client() as client:
        started = await client.post(
            "/v1/runs",
            json={"agent": "scripted", "input": {"steps": [{"sleep": 60}]}},
        )
        run_id = started.json()["run_id"]
        await wait_for_run(client, run_id, {"running"})
        own_stack.runner.kill()
        await own_stack.start_runner()
        done = await wait_for_run(client, run_id, FINAL, timeout=30)
        assert done["status"] == "failed"
        assert done["status_reason"] == "runner_lost"
        assert "does not know the run" in done["error"]["message"]


async def test_no_runner_answers_202_dispatching_then_dispatch_timeout(
    temporal_address: str, tmp_path
) -> None:
    from tests.fixtures_db import migrated_database

    async with migrated_database("sqlite", tmp_path) as url:
        stack = Stack(
            temporal_address=temporal_address,
            database_url=url,
            workdir=tmp_path,
            TETHER_DISPATCH_DEADLINE_S="3",
            TETHER_ACCEPT_WAIT_S="1",
        )
        try:
            await stack.start()
            stack.runner.kill()
            async with stack.client() as client:
                started = await client.post("/v1/runs", json={"agent": "echo", "input": "hi"})
                assert started.status_code == 202
                assert started.json()["status"] == "dispatching"
                done = await wait_for_run(client, started.json()["run_id"], FINAL, timeout=30)
                assert done["status"] == "failed"
                assert done["status_reason"] == "dispatch_timeout"
                history = await client.get(f"/v1/runs/{done['run_id']}/history")
                statuses = [t["status"] for t in history.json()["transitions"]]
                assert statuses == ["dispatching", "failed"]  # no runner ever took it
                assert "attempts" not in done and "version" not in done  # internal bookkeeping
        finally:
            stack.stop()


async def _waiting_approval(client: httpx.AsyncClient) -> tuple[str, str]:
    started = await client.post(
        "/v1/runs", json={"agent": "approval-demo", "input": "clean the build folder"}
    )
    run_id = started.json()["run_id"]
    interaction = await wait_for_pending_interaction(client, run_id)
    return run_id, interaction["interaction_id"]


async def test_runner_killed_while_its_run_waits_fails_it_and_cancels_the_question(
    own_stack: Stack,
) -> None:
    probe = float(own_stack.env["TETHER_WAITING_PROBE_S"])
    bound = float(own_stack.env["TETHER_RUNNER_LOST_TIMEOUT_S"])
    async with own_stack.client() as client:
        run_id, interaction_id = await _waiting_approval(client)
        own_stack.runner.kill()
        killed_at = time.monotonic()
        done = await wait_for_run(client, run_id, FINAL, timeout=60)
        elapsed = time.monotonic() - killed_at
        assert (done["status"], done["status_reason"]) == ("failed", "runner_lost"), done
        # Noticed by the probes, not when somebody answers: the next probe, then the bound.
        assert elapsed < probe + bound + 5, elapsed
        interaction = (await client.get(f"/v1/interactions/{interaction_id}")).json()
        assert interaction["status"] == "cancelled"
        late = await client.post(
            f"/v1/interactions/{interaction_id}/respond",
            json={"response": {"option_id": "allow"}},
        )
        assert late.status_code == 409, late.text


async def test_runner_restarted_while_its_run_waits_fails_it_at_the_next_probe(
    own_stack: Stack,
) -> None:
    async with own_stack.client() as client:
        run_id, interaction_id = await _waiting_approval(client)
        own_stack.runner.kill()
        await own_stack.start_runner()  # a fresh runner: it never heard of the run
        done = await wait_for_run(client, run_id, FINAL, timeout=30)
        assert (done["status"], done["status_reason"]) == ("failed", "runner_lost"), done
        # Usually the fresh runner's 404; on a loaded machine the restart may outlast the bound,
        # and the probe gives up on an unreachable runner instead: runner_lost either way.
        message = done["error"]["message"]
        assert "no longer knows" in message or "timeout" in message.lower(), message
        interaction = (await client.get(f"/v1/interactions/{interaction_id}")).json()
        assert (interaction["status"], interaction["response"]) == ("cancelled", None)
