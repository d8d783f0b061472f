"""Sessions that behave: multitask strategies, idempotent starts, active-run, continue-as-new."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tests.fixtures_db import migrated_database
from tether.devstack.stack import Stack
from tether.ids import session_workflow_id

FINAL = {"completed", "failed", "cancelled", "timed_out"}
WAITS = {"steps": [{"ask": {"kind": "input", "prompt": "go on?"}}]}


def _session() -> str:
    return f"mt-{uuid.uuid4().hex[:10]}"


async def _post(client: httpx.AsyncClient, session: str, **body: object) -> httpx.Response:
    return await client.post(f"/v1/sessions/{session}/runs", json=body)


async def _answer(
    client: httpx.AsyncClient, run_id: str, text: str = "yes", prompt: str | None = None
) -> None:
    """Answer the run's pending interaction (the one asking ``prompt``, if given)."""
    interaction = await wait_for_pending_interaction(client, run_id)
    for _ in range(600):
        if prompt is None or interaction["prompt"] == prompt:
            break
        await asyncio.sleep(0.05)  # the previous answer's resolution is not recorded yet
        interaction = await wait_for_pending_interaction(client, run_id)
    else:
        raise TimeoutError(f"{run_id} never asked {prompt!r}")
    response = await client.post(
        f"/v1/interactions/{interaction['interaction_id']}/respond",
        json={"response": {"text": text}},
    )
    assert response.status_code == 202, response.text


async def test_concurrent_rejects_accept_exactly_one(stack: Stack) -> None:
    session = _session()
    async with stack.client() as client:
        responses = await asyncio.gather(
            *(_post(client, session, agent="echo", input=f"r{i}") for i in range(5))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [202, 409, 409, 409, 409], [r.text for r in responses]
        accepted = next(r.json() for r in responses if r.status_code == 202)
        for rejected in (r for r in responses if r.status_code == 409):
            assert rejected.json()["error"]["details"]["active_run_id"] == accepted["run_id"]
        await wait_for_run(client, accepted["run_id"], FINAL)
        runs = (await client.get("/v1/runs", params={"session_id": session})).json()["runs"]
        assert [r["run_id"] for r in runs] == [accepted["run_id"]]


async def test_enqueue_runs_in_order_after_the_active_one(stack: Stack) -> None:
    session = _session()
    async with stack.client() as client:
        first = (await _post(client, session, agent="scripted", input=WAITS)).json()
        await wait_for_pending_interaction(client, first["run_id"])
        queued = []
        for i in range(3):  # in order: each request answered before the next is sent
            response = await _post(
                client, session, agent="echo", input=f"queued {i}", multitask="enqueue"
            )
            assert response.status_code == 202, response.text
            assert response.json()["status"] == "queued"
            queued.append(response.json()["run_id"])
        summary = (await client.get(f"/v1/sessions/{session}")).json()
        assert summary["status"] == "waiting_for_input"
        assert summary["active_run_id"] == first["run_id"]

        await _answer(client, first["run_id"])
        done = [await wait_for_run(client, run_id, FINAL) for run_id in queued]
        assert [d["status"] for d in done] == ["completed"] * 3
        assert [d["result"]["output"] for d in done] == ["queued 0", "queued 1", "queued 2"]
        first_done = await wait_for_run(client, first["run_id"], FINAL)
        ends = [first_done["ended_at"]] + [d["ended_at"] for d in done]
        starts = [d["started_at"] for d in done]
        for previous_end, start in zip(ends, starts, strict=False):
            assert previous_end <= start  # one at a time, in order
        history = (await client.get(f"/v1/runs/{queued[0]}/history")).json()["transitions"]
        assert [t["status"] for t in history] == ["queued", "dispatching", "running", "completed"]


async def test_concurrent_enqueues_all_answered_none_lost(stack: Stack) -> None:
    session = _session()
    async with stack.client() as client:
        first = (await _post(client, session, agent="scripted", input=WAITS)).json()
        await wait_for_pending_interaction(client, first["run_id"])
        responses = await asyncio.gather(
            *(
                _post(client, session, agent="echo", input=f"c{i}", multitask="enqueue")
                for i in range(4)
            )
        )
        assert [r.status_code for r in responses] == [202] * 4
        run_ids = [r.json()["run_id"] for r in responses]
        assert len(set(run_ids)) == 4
        await _answer(client, first["run_id"])
        for run_id in run_ids:
            assert (await wait_for_run(client, run_id, FINAL))["status"] == "completed"


async def test_interrupt_cancels_the_active_run_then_starts(stack: Stack) -> None:
    session = _session()
    async with stack.client() as client:
        first = (await _post(client, session, agent="scripted", input=WAITS)).json()
        await wait_for_pending_interaction(client, first["run_id"])
        second = await _post(client, session, agent="echo", input="newer", multitask="interrupt")
        assert second.status_code == 202, second.text
        interrupted = await wait_for_run(client, first["run_id"], FINAL)
        assert interrupted["status"] == "cancelled"
        assert interrupted["status_reason"] == "interrupted"
        done = await wait_for_run(client, second.json()["run_id"], FINAL)
        assert done["status"] == "completed" and done["result"]["output"] == "newer"


async def test_a_queued_run_can_be_cancelled(stack: Stack) -> None:
    session = _session()
    async with stack.client() as client:
        first = (await _post(client, session, agent="scripted", input=WAITS)).json()
        await wait_for_pending_interaction(client, first["run_id"])
        queued = (await _post(client, session, agent="echo", input="x", multitask="enqueue")).json()
        response = await client.post(f"/v1/runs/{queued['run_id']}/cancel")
        assert response.status_code == 202
        cancelled = await wait_for_run(client, queued["run_id"], FINAL)
        assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
        assert (await client.get(f"/v1/runs/{first['run_id']}")).json()["status"] == (
            "waiting_for_input"
        )
        await _answer(client, first["run_id"])
        assert (await wait_for_run(client, first["run_id"], FINAL))["status"] == "completed"
        events = (await client.get(f"/v1/runs/{queued['run_id']}/events")).json()["events"]
        assert events == []


async def test_idempotent_start_under_concurrency(stack: Stack) -> None:
    session = _session()
    key = f"key-{uuid.uuid4().hex[:8]}"
    body = {"agent": "echo", "input": "once", "idempotency_key": key}
    async with stack.client() as client:
        responses = await asyncio.gather(
            *(client.post(f"/v1/sessions/{session}/runs", json=body) for _ in range(5))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 200, 200, 200, 202], [r.text for r in responses]
        run_ids = {r.json()["run_id"] for r in responses}
        assert len(run_ids) == 1
        run_id = run_ids.pop()
        await wait_for_run(client, run_id, FINAL)
        # Long after: the same key still answers the same run, from the store.
        again = await client.post(f"/v1/sessions/{session}/runs", json=body)
        assert again.status_code == 200 and again.json()["run_id"] == run_id
        by_header = await client.post(
            f"/v1/sessions/{session}/runs",
            json={"agent": "echo", "input": "once"},
            headers={"Idempotency-Key": key},
        )
        assert by_header.status_code == 200 and by_header.json()["run_id"] == run_id
        conflict = await client.post(
            f"/v1/sessions/{session}/runs", json={**body, "input": "something else"}
        )
        assert conflict.status_code == 409
        assert conflict.json()["error"]["code"] == "idempotency_conflict"
        runs = (await client.get("/v1/runs", params={"session_id": session})).json()["runs"]
        assert len(runs) == 1


async def test_idempotent_start_without_a_session(stack: Stack) -> None:
    key = f"key-{uuid.uuid4().hex[:8]}"
    body = {"agent": "echo", "input": "new session", "idempotency_key": key}
    async with stack.client() as client:
        responses = await asyncio.gather(*(client.post("/v1/runs", json=body) for _ in range(3)))
        assert sorted(r.status_code for r in responses) == [200, 200, 202]
        assert len({r.json()["run_id"] for r in responses}) == 1
        assert len({r.json()["session_id"] for r in responses}) == 1


async def test_active_run_and_its_404(stack: Stack) -> None:
    session = _session()
    async with stack.client() as client:
        missing = await client.get(f"/v1/sessions/{session}/active-run")
        assert missing.status_code == 404
        error = missing.json()["error"]
        assert error["code"] == "no_active_run" and session in error["message"]
        assert error["details"] == {"session_id": session}

        run = (await _post(client, session, agent="scripted", input=WAITS)).json()
        await wait_for_pending_interaction(client, run["run_id"])
        await wait_for_run(client, run["run_id"], {"waiting_for_input"})
        active = (await client.get(f"/v1/sessions/{session}/active-run")).json()
        assert active["run_id"] == run["run_id"]
        events = (await client.get(f"/v1/runs/{run['run_id']}/events")).json()["events"]
        assert active["cursor"] == events[-1]["seq"] > 0
        assert active["stream_url"].endswith(f"after={active['cursor']}")
        listed = (await client.get("/v1/sessions", params={"status": "waiting_for_input"})).json()
        assert session in [s["session_id"] for s in listed["sessions"]]
        await _answer(client, run["run_id"])
        await wait_for_run(client, run["run_id"], FINAL)
        assert (await client.get(f"/v1/sessions/{session}/active-run")).status_code == 404


async def test_continue_as_new_keeps_queue_and_state(
    temporal_address: str, temporal_client: Client, tmp_path: Path
) -> None:
    asks = {"steps": [{"ask": {"kind": "input", "prompt": f"q{i}"}} for i in range(4)]}
    async with migrated_database("sqlite", tmp_path) as url:
        stack = Stack(
            temporal_address=temporal_address,
            database_url=url,
            workdir=tmp_path,
            TETHER_HISTORY_EVENTS_LIMIT="30",
        )
        try:
            await stack.start()
            session = _session()
            async with stack.client() as client:
                first = (await _post(client, session, agent="scripted", input=asks)).json()
                await wait_for_pending_interaction(client, first["run_id"])
                queued = (
                    await _post(client, session, agent="echo", input="after", multitask="enqueue")
                ).json()
                for i in range(4):
                    await _answer(client, first["run_id"], text=f"a{i}", prompt=f"q{i}")
                done = await wait_for_run(client, first["run_id"], FINAL)
                assert done["status"] == "completed", stack.logs()
                assert done["result"]["output"] == "a3"
                events = (await client.get(f"/v1/runs/{first['run_id']}/events")).json()["events"]
                assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
                assert (await wait_for_run(client, queued["run_id"], FINAL))["status"] == (
                    "completed"
                )
            workflow_id = session_workflow_id(stack.project_id, session)
            query = f'WorkflowId = "{workflow_id}" AND TetherRunId = "{first["run_id"]}"'
            for _ in range(50):  # visibility is eventually consistent
                executions = [e async for e in temporal_client.list_workflows(query)]
                if len(executions) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert len(executions) >= 2  # the run went on in a continued execution
        finally:
            stack.stop()
