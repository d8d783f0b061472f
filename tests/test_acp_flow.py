"""ACP agents run detached through the HTTP API, with the scripted ACP agent as a real
subprocess: approvals become interactions, and a session's next run loads the agent's session."""

from __future__ import annotations

import uuid

import pytest

from tests.api_helpers import collect_sse, wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack

FINAL = {"completed", "failed", "cancelled", "timed_out"}


async def _start(client, session: str, text: str) -> dict:  # type: ignore[no-untyped-def]
    response = await client.post(
        f"/v1/sessions/{session}/runs", json={"agent": "acp-demo", "input": text}
    )
    assert response.status_code == 202, response.text
    return response.json()


@pytest.mark.parametrize("choice", ["allow", "deny"])
async def test_acp_permission_becomes_an_interaction(stack: Stack, choice: str) -> None:
    async with stack.client() as client:
        run = await _start(client, f"acp-{uuid.uuid4().hex[:8]}", "clean the build folder")
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        assert interaction["kind"] == "permission"
        assert {o["option_id"]: o["kind"] for o in interaction["options"]} == {
            "allow": "allow_once",
            "deny": "reject_once",
        }
        assert interaction["tool_call"]["title"]
        answered = await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": choice}},
        )
        assert answered.status_code == 202
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "completed", stack.logs()
        assert done["result"]["stop_reason"] == "end_turn"
        events = (await client.get(f"/v1/runs/{run['run_id']}/events")).json()["events"]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        updates = [e["data"] for e in events if e["type"] == "tool_call.update"]
        final_status = updates[-1]["status"]
        assert final_status == ("completed" if choice == "allow" else "failed")
        types = {e["type"] for e in events}
        assert {"plan", "thought", "tool_call", "message"} <= types


async def test_acp_cancel_while_permission_is_open(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, f"acp-{uuid.uuid4().hex[:8]}", "clean the build folder")
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        assert (await client.post(f"/v1/runs/{run['run_id']}/cancel")).status_code == 202
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "cancelled"
        record = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert record["status"] == "cancelled"
        events = (await client.get(f"/v1/runs/{run['run_id']}/events")).json()["events"]
        assert events[-1]["type"] == "run.cancelled"


async def test_acp_agent_crash_fails_with_exit_code_and_stderr(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, f"acp-{uuid.uuid4().hex[:8]}", "crash")
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "failed" and done["status_reason"] == "agent_error"
        assert done["error"]["exit_code"] == 3
        assert done["error"]["stderr_tail"]


async def test_acp_stderr_flood_does_not_block(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, f"acp-{uuid.uuid4().hex[:8]}", "stderr-flood")
        done = await wait_for_run(client, run["run_id"], FINAL, timeout=60)
        assert done["status"] == "completed"


async def test_second_run_of_a_session_loads_the_agents_session(stack: Stack) -> None:
    session = f"acp-{uuid.uuid4().hex[:8]}"
    async with stack.client() as client:
        first = await _start(client, session, "echo hello there")
        done = await wait_for_run(client, first["run_id"], FINAL)
        assert done["status"] == "completed"
        assert done["usage"]  # token usage from the prompt response
        second = await _start(client, session, "what do you remember?")
        live = await collect_sse(client, second["run_id"])
        assert live[-1]["data"]["status"] == "completed"
        done = await wait_for_run(client, second["run_id"], FINAL)
        # The agent loaded the first run's ACP session: it remembers the earlier turn.
        assert "echo hello there" in done["result"]["output"], done["result"]
        logs = [
            e["data"]
            for e in (await client.get(f"/v1/runs/{second['run_id']}/events")).json()["events"]
            if e["type"] == "log"
        ]
        assert any("loaded" in entry.get("message", "") for entry in logs), logs
