"""Record workflow histories from real runs into ``tests/histories/`` for the replay test.

Usage: ``python -m tests.record_histories``. Starts its own Temporal dev server and stack, runs
a few scenarios through the HTTP API, and writes each session's execution histories as JSON.
Re-record when the workflow changes on purpose (and keep the old files if runs recorded with
them may still be in flight somewhere).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import Client

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack, standalone_stack
from tether.ids import session_workflow_id

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


async def _write(client: Client, name: str, session_id: str) -> None:
    index = 0
    async for execution in client.list_workflows(
        f'WorkflowId = "{session_workflow_id(session_id)}"'
    ):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        (HISTORIES / f"{name}_{index}.json").write_text(history.to_json())
        index += 1


async def main() -> None:
    async with standalone_stack() as (env, stack):
        sessions = await _scenarios(stack)
        await asyncio.sleep(1.0)  # visibility catches up
        HISTORIES.mkdir(exist_ok=True)
        for name, session_id in sessions.items():
            await _write(env.client, name, session_id)


if __name__ == "__main__":
    asyncio.run(main())
