"""Cancel, expiry, busy sessions, agent errors and SSE resume, through the HTTP API."""

from __future__ import annotations

import uuid

import httpx

from tests.api_helpers import collect_sse, wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack

FINAL = {"completed", "failed", "cancelled", "timed_out"}


def _slow_steps(events: int, sleep: float) -> dict:
    steps: list[dict] = []
    for i in range(events):
        steps += [{"emit": "message.delta", "data": {"text": f"chunk {i} "}}, {"sleep": sleep}]
    return {"steps": [*steps, {"output": "done"}]}


async def _start(client: httpx.AsyncClient, agent: str, input: object, **extra: object) -> dict:
    response = await client.post("/v1/runs", json={"agent": agent, "input": input, **extra})
    assert response.status_code == 202, response.text
    return response.json()


async def test_echo_run_completes(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "echo", "hello detached world")
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "completed"
        assert done["result"] == {"output": "hello detached world", "stop_reason": "end_turn"}
        assert done["usage"]["total_tokens"] == 6
        events = (await client.get(f"/v1/runs/{run['run_id']}/events")).json()["events"]
        deltas = "".join(e["data"]["text"] for e in events if e["type"] == "message.delta")
        assert deltas == "hello detached world"


async def test_cancel_while_running(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "scripted", _slow_steps(200, 0.05))
        run_id = run["run_id"]
        await wait_for_run(client, run_id, {"running"})
        response = await client.post(
            f"/v1/runs/{run_id}/cancel", json={"reason": "changed my mind"}
        )
        assert response.status_code == 202, response.text
        done = await wait_for_run(client, run_id, FINAL)
        assert done["status"] == "cancelled"
        assert done["status_reason"] == "changed my mind"
        events = (await client.get(f"/v1/runs/{run_id}/events")).json()["events"]
        assert events[-1]["type"] == "run.cancelled"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        again = await client.post(f"/v1/runs/{run_id}/cancel")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "run_finished"


async def test_cancel_while_waiting_for_input(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "approval-demo", None)
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        response = await client.post(f"/v1/runs/{run['run_id']}/cancel")
        assert response.status_code == 202
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "cancelled"
        assert done["pending_interaction"] is None
        record = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert record["status"] == "cancelled"
        late = await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}},
        )
        assert late.status_code == 409


async def test_interaction_expires_and_agent_decides(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "approval-demo", {"expires_in": 1})
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        assert interaction["expires_at"] is not None
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "completed"
        assert "expired" in done["result"]["output"]
        record = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert record["status"] == "expired"
        assert record["response"] is None


async def test_second_run_on_busy_session_is_409(stack: Stack) -> None:
    session = f"busy-{uuid.uuid4().hex[:8]}"
    async with stack.client() as client:
        first = await client.post(f"/v1/sessions/{session}/runs", json={"agent": "approval-demo"})
        assert first.status_code == 202
        second = await client.post(f"/v1/sessions/{session}/runs", json={"agent": "echo"})
        assert second.status_code == 409, second.text
        error = second.json()["error"]
        assert error["code"] == "session_busy"
        assert error["details"]["active_run_id"] == first.json()["run_id"]
        runs = (await client.get("/v1/runs", params={"session_id": session})).json()["runs"]
        assert [r["run_id"] for r in runs] == [first.json()["run_id"]]

        summary = (await client.get(f"/v1/sessions/{session}")).json()
        assert summary["active_run_id"] == first.json()["run_id"]

        await client.post(f"/v1/runs/{first.json()['run_id']}/cancel")
        await wait_for_run(client, first.json()["run_id"], FINAL)
        # Idle again: the next run starts a fresh execution of the session's workflow.
        third = await client.post(f"/v1/sessions/{session}/runs", json={"agent": "echo"})
        assert third.status_code == 202, third.text
        await wait_for_run(client, third.json()["run_id"], {"completed"})
        summary = (await client.get(f"/v1/sessions/{session}")).json()
        assert summary["status"] == "idle"
        assert summary["last_run_id"] == third.json()["run_id"]


async def test_agent_error_fails_the_run_with_a_readable_reason(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "scripted", {"steps": [{"fail": "disk on fire"}]})
        done = await wait_for_run(client, run["run_id"], FINAL)
        assert done["status"] == "failed"
        assert done["status_reason"] == "agent_error"
        assert "disk on fire" in done["error"]["message"]


async def test_sse_resumes_from_last_event_id(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "scripted", _slow_steps(12, 0.01))
        await wait_for_run(client, run["run_id"], FINAL)
        everything = await collect_sse(client, run["run_id"])
        seqs = [int(e["id"]) for e in everything if e["event"] != "end"]
        assert seqs == list(range(1, len(seqs) + 1))
        rest = await collect_sse(client, run["run_id"], headers={"Last-Event-ID": "5"})
        assert [e for e in rest if e["event"] != "end"] == everything[5:-1]
        assert rest[-1]["event"] == "end"
        by_query = await collect_sse(client, run["run_id"], params={"after": 9})
        assert [int(e["id"]) for e in by_query[:-1]] == seqs[9:]


async def test_live_sse_follows_a_running_run(stack: Stack) -> None:
    async with stack.client() as client:
        run = await _start(client, "scripted", _slow_steps(20, 0.05))
        live = await collect_sse(client, run["run_id"])
        assert live[-1]["event"] == "end" and live[-1]["data"]["status"] == "completed"
        stored = (await client.get(f"/v1/runs/{run['run_id']}/events")).json()["events"]
        assert [e["data"] for e in live[:-1]] == stored
