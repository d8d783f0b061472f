"""Record workflow histories from real runs into ``tests/histories/`` for the replay test.

Usage: ``python -m tests.record_histories [GROUP ...]``, a group being ``sessions``
(``SessionRunWorkflow``), ``triggers`` (``TriggerFiringWorkflow``) or ``catalog``
(``AgentCatalogWorkflow``); all of them by default. Starts its own Temporal dev server and
stack, runs the groups' scenarios through the HTTP API, and writes each execution's history as
JSON, one file per execution (``{scenario}_{index}.json``). Re-record when a workflow changes
on purpose (and keep the old files if runs recorded with them may still be in flight).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack, standalone_stack
from tether.ids import catalog_workflow_id, session_workflow_id
from workflows.agent_catalog import AgentCatalogWorkflow

HISTORIES = Path(__file__).parent / "histories"
FINAL = {"completed", "failed", "cancelled"}


async def _answer(client, run_id: str, response: dict) -> None:  # type: ignore[no-untyped-def]
    interaction = await wait_for_pending_interaction(client, run_id)
    await client.post(
        f"/v1/interactions/{interaction['interaction_id']}/respond", json={"response": response}
    )


async def _scenarios(stack: Stack) -> dict[str, str]:
    """Run each scenario; answer ``{name: session_id}``."""
    sessions: dict[str, str] = {}
    async with stack.client() as client:
        for choice in ("allow", "deny"):
            run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
            await _answer(client, run["run_id"], {"option_id": choice})
            await wait_for_run(client, run["run_id"], FINAL)
            sessions[f"approval_{choice}"] = run["session_id"]

        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        await wait_for_pending_interaction(client, run["run_id"])
        await client.post(f"/v1/runs/{run['run_id']}/cancel")
        await wait_for_run(client, run["run_id"], FINAL)
        sessions["cancel_waiting"] = run["session_id"]

        run = (
            await client.post(
                "/v1/runs", json={"agent": "approval-demo", "input": {"expires_in": 0.5}}
            )
        ).json()
        await wait_for_run(client, run["run_id"], FINAL)
        sessions["expired"] = run["session_id"]

        session = "record-queue"
        ask = {"steps": [{"ask": {"kind": "input", "prompt": "go?"}}]}
        first = (
            await client.post(
                f"/v1/sessions/{session}/runs", json={"agent": "scripted", "input": ask}
            )
        ).json()
        await wait_for_pending_interaction(client, first["run_id"])
        queued = (
            await client.post(
                f"/v1/sessions/{session}/runs",
                json={"agent": "echo", "input": "next", "multitask": "enqueue"},
            )
        ).json()
        interrupt = (
            await client.post(
                f"/v1/sessions/{session}/runs",
                json={"agent": "echo", "input": "now", "multitask": "interrupt"},
            )
        ).json()
        for run_id in (first["run_id"], interrupt["run_id"], queued["run_id"]):
            await wait_for_run(client, run_id, FINAL)
        sessions["queue_interrupt"] = session

        run = (
            await client.post(
                "/v1/runs", json={"agent": "scripted", "input": {"steps": [{"fail": "boom"}]}}
            )
        ).json()
        await wait_for_run(client, run["run_id"], FINAL)
        sessions["agent_error"] = run["session_id"]
    return sessions


# ---- trigger firings ----------------------------------------------------------------------

ASK = {"steps": [{"ask": {"kind": "input", "prompt": "go on?"}}]}
DELIVERED = {"completed", "failed", "cancelled", "timed_out", "rejected"}


async def _trigger(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/triggers", json={"name": name, **body})
    response.raise_for_status()
    return response.json()


async def _fire_webhook(
    client: httpx.AsyncClient, trigger: dict[str, Any], payload: Any, event_id: str
) -> dict[str, Any]:
    from api.signatures import sign

    body = json.dumps(payload).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Tether-Timestamp": str(stamp),
        "X-Tether-Signature": sign(trigger["secret"], stamp, body),
        "X-Tether-Event-Id": event_id,
    }
    response = await client.post(
        f"/v1/triggers/{trigger['trigger_id']}/fire", content=body, headers=headers
    )
    response.raise_for_status()
    return response.json()


async def _delivered(
    client: httpx.AsyncClient, trigger_id: str, **params: str
) -> list[dict[str, Any]]:
    """The trigger's deliveries once at least one (of ``params``) has its final status."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/triggers/{trigger_id}/deliveries", params=params)
        done = [d for d in response.json()["deliveries"] if d["status"] in DELIVERED]
        if done:
            return done
        await asyncio.sleep(0.1)
    raise TimeoutError(f"no delivery of {trigger_id} ({params}) ended")


async def _delivery(client: httpx.AsyncClient, trigger_id: str, delivery_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        response = await client.get(f"/v1/triggers/{trigger_id}/deliveries/{delivery_id}")
        if response.status_code == 200 and response.json()["status"] in DELIVERED:
            return response.json()
        await asyncio.sleep(0.1)
    raise TimeoutError(f"delivery {delivery_id} did not end")


async def _trigger_scenarios(stack: Stack, temporal: Client) -> dict[str, str]:
    """Fire webhooks and schedules; answer ``{name: firing workflow ID}``, each firing over."""
    firings: dict[str, str] = {}
    async with stack.client() as client:
        webhook = await _trigger(
            client,
            "record-webhook",
            kind="webhook",
            target={"agent": "echo", "input": "PR #{{ payload.pr }}"},
        )
        fired = await _fire_webhook(client, webhook, {"pr": 42}, "evt-completed")
        await _delivery(client, webhook["trigger_id"], fired["delivery_id"])
        firings["firing_webhook_completed"] = fired["firing_workflow_id"]

        # One session, multitask reject: a firing while its run waits is refused as busy.
        session = await _trigger(
            client,
            "record-webhook-session",
            kind="webhook",
            target={
                "agent": "scripted",
                "input": "{{ payload.script }}",
                "session_id": "record-trigger-session",
                "multitask": "reject",
            },
        )
        waiting = await _fire_webhook(client, session, {"script": ASK}, "evt-waiting")
        await wait_for_pending_interaction(client, waiting["run_id"])
        busy = await _fire_webhook(client, session, {"script": ASK}, "evt-busy")
        await _delivery(client, session["trigger_id"], busy["delivery_id"])
        firings["firing_session_busy"] = busy["firing_workflow_id"]
        await client.post(f"/v1/runs/{waiting['run_id']}/cancel", json={"reason": "enough"})
        await _delivery(client, session["trigger_id"], waiting["delivery_id"])
        firings["firing_run_cancelled"] = waiting["firing_workflow_id"]

        schedule = await _trigger(
            client,
            "record-schedule",
            kind="schedule",
            target={"agent": "echo", "input": "tick {{ event.id }}"},
            schedule={"interval_s": 2},
        )
        [ticked, *_] = await _delivered(client, schedule["trigger_id"])
        await client.delete(f"/v1/triggers/{schedule['trigger_id']}")
        firings["firing_schedule_completed"] = ticked["firing_workflow_id"]

        # cancel_other: the next tick cancels the firing whose run still waits.
        overlap = await _trigger(
            client,
            "record-cancel-other",
            kind="schedule",
            target={"agent": "scripted", "input": ASK},
            schedule={"interval_s": 2, "overlap": "cancel_other"},
        )
        [cancelled, *_] = await _delivered(client, overlap["trigger_id"], status="cancelled")
        await client.post(f"/v1/triggers/{overlap['trigger_id']}/pause")
        runs = await client.get(
            "/v1/runs", params={"trigger_id": overlap["trigger_id"], "limit": 100}
        )
        for run in runs.json()["runs"]:
            if run["status"] not in FINAL:
                await client.post(f"/v1/runs/{run['run_id']}/cancel")
        await client.delete(f"/v1/triggers/{overlap['trigger_id']}")
        firings["firing_cancel_other"] = cancelled["firing_workflow_id"]
    for workflow_id in firings.values():  # the delivery is recorded just before the end
        await temporal.get_workflow_handle(workflow_id).result()
    return firings


async def _write(client: Client, name: str, workflow_id: str) -> None:
    index = 0
    async for execution in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        (HISTORIES / f"{name}_{index}.json").write_text(history.to_json())
        index += 1


async def _session_scenarios(stack: Stack, temporal: Client) -> dict[str, str]:
    sessions = await _scenarios(stack)
    return {
        name: session_workflow_id(stack.project_id, session_id)
        for name, session_id in sessions.items()
    }


async def _catalog_scenarios(stack: Stack, temporal: Client) -> dict[str, str]:
    """The catalogue sync the worker started (still running): a sync at start, then one on a
    ``refresh`` signal that cuts its wait short."""
    await stack.wait_for_agents()
    handle = temporal.get_workflow_handle(catalog_workflow_id(stack.task_queue))
    await handle.signal(AgentCatalogWorkflow.refresh)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        events = (await handle.fetch_history()).events
        if sum(e.HasField("activity_task_completed_event_attributes") for e in events) >= 2:
            return {"catalog_sync": handle.id}
        await asyncio.sleep(0.1)
    raise TimeoutError("the catalogue did not sync again on refresh")


async def _waiting_scenarios(stack: Stack, _: Client) -> dict[str, str]:
    """Runs that wait across runner probes: answered after a few, and lost by their runner."""
    sessions: dict[str, str] = {}
    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        await wait_for_pending_interaction(client, run["run_id"])
        await asyncio.sleep(3.5)  # a few probes (TETHER_WAITING_PROBE_S is 1 here)
        await _answer(client, run["run_id"], {"option_id": "allow"})
        await wait_for_run(client, run["run_id"], FINAL)
        sessions["waiting_probed_allow"] = run["session_id"]

        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        await wait_for_pending_interaction(client, run["run_id"])
        stack.runner.kill()
        await stack.start_runner()  # it never heard of the run: the next probe fails it
        await wait_for_run(client, run["run_id"], FINAL)
        sessions["waiting_runner_lost"] = run["session_id"]
    return {name: session_workflow_id(session) for name, session in sessions.items()}


GROUPS = {
    "sessions": _session_scenarios,
    "waiting": _waiting_scenarios,
    "triggers": _trigger_scenarios,
    "catalog": _catalog_scenarios,
}


async def main(groups: list[str]) -> None:
    # Recorded in clear, so the files stay readable in review; the replay test replays them
    # with the codec on, which passes clear payloads through.
    async with standalone_stack(TETHER_PAYLOAD_KEYS="") as (env, stack):
        workflows: dict[str, str] = {}
        for group in groups:
            workflows.update(await GROUPS[group](stack, env.client))
        await asyncio.sleep(1.0)  # visibility catches up
        HISTORIES.mkdir(exist_ok=True)
        for name, workflow_id in workflows.items():
            await _write(env.client, name, workflow_id)


if __name__ == "__main__":
    chosen = sys.argv[1:] or list(GROUPS)
    unknown = set(chosen) - set(GROUPS)
    if unknown:
        sys.exit(f"unknown groups {sorted(unknown)}; choose from {sorted(GROUPS)}")
    asyncio.run(main(chosen))
