"""Triggers end to end, through the HTTP API on the real stack: schedules (Temporal Schedules)
and signed webhooks fire runs once each, and each delivery ends with its run's outcome."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.worker import Replayer

from api.signatures import sign
from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack
from tether.ids import schedule_id
from workflows.trigger_firing import TriggerFiringWorkflow

FINAL = {"completed", "failed", "cancelled", "timed_out", "rejected"}
ASK = {"steps": [{"ask": {"kind": "input", "prompt": "go on?"}}]}


async def _create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("name", f"t-{uuid.uuid4().hex[:6]}")
    response = await client.post("/v1/triggers", json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def _deliveries(client: httpx.AsyncClient, trigger_id: str, **params: Any) -> list[dict]:
    response = await client.get(f"/v1/triggers/{trigger_id}/deliveries", params=params)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


async def _runs(client: httpx.AsyncClient, trigger_id: str) -> list[dict]:
    response = await client.get("/v1/runs", params={"trigger_id": trigger_id, "limit": 500})
    return response.json()["runs"]


async def _until(
    probe: Callable[[], Any], check: Callable[[Any], bool], timeout: float = 30.0
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {value!r} after {timeout}s")
        await asyncio.sleep(0.1)


def _all_final(deliveries: list[dict], count: int) -> bool:
    return len(deliveries) >= count and all(d["status"] in FINAL for d in deliveries)


async def _fire(
    client: httpx.AsyncClient,
    trigger: dict[str, Any],
    payload: Any,
    *,
    event_id: str | None = None,
    secret: str | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "Content-Type": "application/json",
        "X-Tether-Timestamp": str(stamp),
        "X-Tether-Signature": sign(secret or trigger["secret"], stamp, body),
    }
    if event_id is not None:
        headers["X-Tether-Event-Id"] = event_id
    return await client.post(
        f"/v1/triggers/{trigger['trigger_id']}/fire", content=body, headers=headers
    )


# Schedules.


async def test_a_schedule_fires_runs_with_its_trigger_id_until_paused(
    stack: Stack, temporal_client: Client
) -> None:
    async with stack.client() as client:
        trigger = await _create(
            client,
            kind="schedule",
            target={"agent": "echo", "input": "tick {{ event.id }} from {{ trigger.name }}"},
            schedule={"interval_s": 2},
        )
        trigger_id = trigger["trigger_id"]
        assert trigger["schedule_id"] == schedule_id(trigger_id) and trigger["secret"] is None
        done = await _until(
            lambda: _deliveries(client, trigger_id), lambda d: _all_final(d, 2), timeout=20
        )
        runs = {r["run_id"]: r for r in await _runs(client, trigger_id)}
        for delivery in done:
            assert delivery["status"] == "completed" and delivery["source"] == "schedule"
            run = runs[delivery["run_id"]]
            assert run["trigger_id"] == trigger_id
            assert run["session_id"] == delivery["session_id"]
            assert run["result"]["output"] == f"tick {delivery['event_id']} from {trigger['name']}"
            assert delivery["firing_workflow_id"].endswith(delivery["event_id"])
        assert len({d["session_id"] for d in done}) == len(done)  # a new session per firing

        paused = await client.post(f"/v1/triggers/{trigger_id}/pause")
        assert paused.status_code == 200 and paused.json()["paused"] is True
        await asyncio.sleep(1.5)  # a firing that started just before the pause may land
        before = len(await _deliveries(client, trigger_id))
        await asyncio.sleep(5)  # two and a half intervals
        assert len(await _deliveries(client, trigger_id)) == before
        fired = await client.post(f"/v1/triggers/{trigger_id}/fire")
        assert fired.status_code == 409 and fired.json()["error"]["code"] == "trigger_paused"

        # Operators find the firings and their runs by trigger in Temporal.
        query = f'TetherTriggerId = "{trigger_id}"'
        types = await _until(
            lambda: _workflow_types(temporal_client, query),
            lambda t: {"TriggerFiringWorkflow", "SessionRunWorkflow"} <= t,
        )
        assert types == {"TriggerFiringWorkflow", "SessionRunWorkflow"}

        assert (await client.delete(f"/v1/triggers/{trigger_id}")).status_code == 204
        assert (await client.get(f"/v1/triggers/{trigger_id}")).status_code == 404
        assert (await client.get(f"/v1/triggers/{trigger_id}/deliveries")).status_code == 404


async def _workflow_types(client: Client, query: str) -> set[str]:
    return {w.workflow_type async for w in client.list_workflows(query)}


async def test_overlap_skip_fires_nothing_while_the_run_goes_on(stack: Stack) -> None:
    async with stack.client() as client:
        trigger = await _create(
            client,
            kind="schedule",
            target={"agent": "scripted", "input": {"steps": [{"sleep": 4}, {"output": "slow"}]}},
            schedule={"interval_s": 2, "overlap": "skip"},
        )
        trigger_id = trigger["trigger_id"]
        await _until(lambda: _deliveries(client, trigger_id), lambda d: _all_final(d, 2), 25)
        await client.post(f"/v1/triggers/{trigger_id}/pause")
        runs = await _until(
            lambda: _runs(client, trigger_id),
            lambda rs: all(r["status"] in FINAL for r in rs),
        )
        runs.sort(key=lambda r: r["created_at"])
        # Each run started after the one before had ended: the ticks in between were skipped.
        for earlier, later in itertools.pairwise(runs):
            assert earlier["ended_at"] <= later["created_at"], (earlier, later)
        assert all(r["status"] == "completed" for r in runs)
        await client.delete(f"/v1/triggers/{trigger_id}")


async def test_overlap_cancel_other_cancels_the_previous_run(stack: Stack) -> None:
    async with stack.client() as client:
        trigger = await _create(
            client,
            kind="schedule",
            target={"agent": "scripted", "input": ASK},
            schedule={"interval_s": 2, "overlap": "cancel_other"},
        )
        trigger_id = trigger["trigger_id"]
        done = await _until(
            lambda: _deliveries(client, trigger_id, status="cancelled"), lambda d: len(d) >= 1
        )
        await client.post(f"/v1/triggers/{trigger_id}/pause")
        run = await wait_for_run(client, done[0]["run_id"], FINAL)
        assert run["status"] == "cancelled" and run["status_reason"] == "firing_cancelled"
        assert done[0]["status_reason"] == "firing_cancelled"
        # The newer firing's run is the one left waiting; stop it too.
        runs = await _runs(client, trigger_id)
        for waiting in (r for r in runs if r["status"] not in FINAL):
            await client.post(f"/v1/runs/{waiting['run_id']}/cancel")
        await client.delete(f"/v1/triggers/{trigger_id}")


async def test_backfill_and_fire_now(stack: Stack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    # Daily, twelve hours from now: nothing fires during the test but what it asks for.
    offset = int((now - timedelta(hours=12)).timestamp()) % 86400
    async with stack.client() as client:
        trigger = await _create(
            client,
            kind="schedule",
            target={"agent": "echo", "input": "{{ event.id }}"},
            schedule={"interval_s": 86400, "interval_offset_s": offset},
        )
        trigger_id = trigger["trigger_id"]
        response = await client.post(
            f"/v1/triggers/{trigger_id}/backfill",
            json={
                "start_at": (now - timedelta(days=3)).isoformat(),
                "end_at": (now - timedelta(hours=1)).isoformat(),
            },
        )
        assert response.status_code == 202, response.text
        missed = [now - timedelta(hours=12, days=days) for days in (2, 1, 0)]
        expected = sorted(t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in missed)
        done = await _until(lambda: _deliveries(client, trigger_id), lambda d: _all_final(d, 3))
        assert sorted(d["event_id"] for d in done) == expected
        assert {d["status"] for d in done} == {"completed"}
        outputs = sorted(r["result"]["output"] for r in await _runs(client, trigger_id))
        assert outputs == expected

        fired = await client.post(f"/v1/triggers/{trigger_id}/fire")
        assert fired.status_code == 202 and fired.json()["status"] == "fired"
        await _until(lambda: _deliveries(client, trigger_id), lambda d: _all_final(d, 4))
        empty_range = await client.post(
            f"/v1/triggers/{trigger_id}/backfill",
            json={"start_at": now.isoformat(), "end_at": now.isoformat()},
        )
        assert empty_range.status_code == 422
        await client.delete(f"/v1/triggers/{trigger_id}")


# Webhooks.


async def test_the_same_webhook_event_five_times_makes_one_run(
    stack: Stack, temporal_client: Client
) -> None:
    async with stack.client() as client:
        trigger = await _create(
            client,
            kind="webhook",
            target={"agent": "echo", "input": "review PR #{{ payload.pr }}"},
        )
        assert trigger["secret"].startswith("whsec_")
        assert trigger["webhook_url"].endswith(f"/v1/triggers/{trigger['trigger_id']}/fire")
        assert "secret" not in (await client.get(f"/v1/triggers/{trigger['trigger_id']}")).json()
        event = f"evt-{uuid.uuid4().hex[:8]}"
        responses = await asyncio.gather(
            *(_fire(client, trigger, {"pr": 42}, event_id=event) for _ in range(5))
        )
        assert {r.status_code for r in responses} <= {200, 202}, [r.text for r in responses]
        answers = [r.json() for r in responses]
        assert len({(a["delivery_id"], a["run_id"]) for a in answers}) == 1
        run = await wait_for_run(client, answers[0]["run_id"], {"completed"})
        assert run["result"]["output"] == "review PR #42"
        assert run["trigger_id"] == trigger["trigger_id"]
        [delivery] = await _until(
            lambda: _deliveries(client, trigger["trigger_id"]), lambda d: _all_final(d, 1)
        )
        assert delivery["status"] == "completed" and delivery["event_id"] == event
        assert delivery["payload"] == {"pr": 42}
        assert [r["run_id"] for r in await _runs(client, trigger["trigger_id"])] == [run["run_id"]]

        again = await _fire(client, trigger, {"pr": 42}, event_id=event)
        assert again.status_code == 200 and again.json()["duplicate"] is True
        assert again.json()["delivery"]["status"] == "completed"

        # The event ID may come from the signed body instead of a header.
        by_body = await _fire(client, trigger, {"pr": 7, "event_id": "body-1"})
        assert by_body.status_code == 202 and by_body.json()["event_id"] == "body-1"
        await wait_for_run(client, by_body.json()["run_id"], {"completed"})

    # The firing's history replays against the current workflow code.
    handle = temporal_client.get_workflow_handle(answers[0]["firing_workflow_id"])
    await handle.result()
    replayer = Replayer(workflows=[TriggerFiringWorkflow], data_converter=stack.data_converter())
    await replayer.replay_workflow(await handle.fetch_history())


async def test_bad_or_expired_signatures_are_401_and_start_nothing(stack: Stack) -> None:
    async with stack.client() as client:
        trigger = await _create(
            client, kind="webhook", target={"agent": "echo", "input": "{{ payload }}"}
        )
        url = f"/v1/triggers/{trigger['trigger_id']}/fire"
        wrong = await _fire(client, trigger, {"x": 1}, event_id="a", secret="whsec_not_the_one__")
        old = await _fire(client, trigger, {"x": 1}, event_id="b", timestamp=int(time.time()) - 900)
        bare = await client.post(url, json={"x": 1}, headers={"X-Tether-Event-Id": "c"})
        stamp = str(int(time.time()))
        tampered = await client.post(
            url,
            content=b'{"x": 2}',
            headers={
                "X-Tether-Timestamp": stamp,
                "X-Tether-Signature": sign(trigger["secret"], stamp, b'{"x": 1}'),
            },
        )
        codes = [r.json()["error"]["code"] for r in (wrong, old, bare, tampered)]
        assert [r.status_code for r in (wrong, old, bare, tampered)] == [401] * 4
        assert codes == [
            "invalid_signature",
            "signature_expired",
            "missing_signature",
            "invalid_signature",
        ]
        await asyncio.sleep(0.5)
        assert await _deliveries(client, trigger["trigger_id"]) == []
        assert await _runs(client, trigger["trigger_id"]) == []

        bad_json = await client.post(
            url,
            content=b"{nope",
            headers={
                "X-Tether-Timestamp": stamp,
                "X-Tether-Signature": sign(trigger["secret"], stamp, b"{nope"),
            },
        )
        assert bad_json.status_code == 422
        await client.post(f"/v1/triggers/{trigger['trigger_id']}/pause")
        paused = await _fire(client, trigger, {"x": 1}, event_id="d")
        assert paused.status_code == 409 and paused.json()["error"]["code"] == "trigger_paused"


async def test_deliveries_end_with_the_run_outcome(stack: Stack) -> None:
    session = f"trg-session-{uuid.uuid4().hex[:8]}"
    async with stack.client() as client:
        trigger = await _create(
            client,
            kind="webhook",
            target={
                "agent": "scripted",
                "input": "{{ payload.script }}",
                "session_id": session,
                "multitask": "reject",
            },
        )
        trigger_id = trigger["trigger_id"]

        failing = await _fire(client, trigger, {"script": {"steps": [{"fail": "x"}]}}, event_id="f")
        assert failing.status_code == 202, failing.text
        failed = await _until(
            lambda: _delivery(client, trigger_id, failing.json()["delivery_id"]),
            lambda d: d["status"] in FINAL,
        )
        assert failed["status"] == "failed" and failed["status_reason"] == "agent_error"
        assert failed["details"]["error"]["message"] == "x"
        assert failed["run_id"] == failing.json()["run_id"]

        waiting = (await _fire(client, trigger, {"script": ASK}, event_id="w")).json()
        await wait_for_pending_interaction(client, waiting["run_id"])
        submitted = await _delivery(client, trigger_id, waiting["delivery_id"])
        assert submitted["status"] == "submitted" and submitted["session_id"] == session

        busy = await _fire(client, trigger, {"script": ASK}, event_id="b")
        assert busy.status_code == 202  # the firing started; its run is refused by the session
        rejected = await _until(
            lambda: _delivery(client, trigger_id, busy.json()["delivery_id"]),
            lambda d: d["status"] in FINAL,
        )
        assert rejected["status"] == "rejected" and rejected["status_reason"] == "session_busy"
        assert rejected["details"] == {"active_run_id": waiting["run_id"]}
        assert rejected["run_id"] is None
        assert (await client.get(f"/v1/runs/{busy.json()['run_id']}")).status_code == 404

        await client.post(f"/v1/runs/{waiting['run_id']}/cancel", json={"reason": "enough"})
        cancelled = await _until(
            lambda: _delivery(client, trigger_id, waiting["delivery_id"]),
            lambda d: d["status"] in FINAL,
        )
        assert cancelled["status"] == "cancelled" and cancelled["status_reason"] == "enough"

        only_rejected = await _deliveries(client, trigger_id, status="rejected")
        assert [d["event_id"] for d in only_rejected] == ["b"]
        page = await client.get(f"/v1/triggers/{trigger_id}/deliveries", params={"limit": 2})
        rest = await client.get(
            f"/v1/triggers/{trigger_id}/deliveries",
            params={"limit": 2, "cursor": page.json()["next_cursor"]},
        )
        paged = [d["event_id"] for d in page.json()["deliveries"] + rest.json()["deliveries"]]
        assert sorted(paged) == ["b", "f", "w"] and rest.json()["next_cursor"] is None


async def _delivery(client: httpx.AsyncClient, trigger_id: str, delivery_id: str) -> dict:
    response = await client.get(f"/v1/triggers/{trigger_id}/deliveries/{delivery_id}")
    return response.json() if response.status_code == 200 else {"status": None}


# Configuration errors.


async def test_invalid_triggers_are_422_and_unknown_ones_404(stack: Stack) -> None:
    echo = {"agent": "echo", "input": "hi"}
    invalid = [
        {"kind": "schedule", "target": echo, "schedule": {"cron": ["not a cron"]}},
        {"kind": "schedule", "target": echo},
        {"kind": "schedule", "target": echo, "schedule": {"interval_s": 60, "time_zone": "X/Y"}},
        {
            "kind": "schedule",
            "target": {**echo, "input": "{{ payload.x }}"},
            "schedule": {"interval_s": 60},
        },
        {"kind": "webhook", "target": {**echo, "input": "{{ payload.x + 1 }}"}},
        {"kind": "webhook", "target": {**echo, "agent": "no-such-agent"}},
        {"kind": "webhook", "target": echo, "schedule": {"interval_s": 60}},
    ]
    async with stack.client() as client:
        before = (await client.get("/v1/triggers", params={"limit": 500})).json()["triggers"]
        for body in invalid:
            response = await client.post("/v1/triggers", json={"name": "bad", **body})
            assert response.status_code == 422, (body, response.text)
            assert "error" in response.json()
        after = (await client.get("/v1/triggers", params={"limit": 500})).json()["triggers"]
        assert len(after) == len(before)  # a refused schedule leaves no trigger behind

        for method, path in [
            ("GET", "/v1/triggers/trg_nope"),
            ("PATCH", "/v1/triggers/trg_nope"),
            ("POST", "/v1/triggers/trg_nope/pause"),
            ("POST", "/v1/triggers/trg_nope/fire"),
            ("DELETE", "/v1/triggers/trg_nope"),
            ("GET", "/v1/triggers/trg_nope/deliveries"),
        ]:
            response = await client.request(method, path, json={} if method == "PATCH" else None)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json()["error"]["code"] == "trigger_not_found"

        trigger = await _create(
            client, kind="schedule", target=echo, schedule={"interval_s": 3600}, paused=True
        )
        patched = await client.patch(
            f"/v1/triggers/{trigger['trigger_id']}",
            json={"name": "renamed", "schedule": {"cron": ["*/5 * * * *"]}},
        )
        assert patched.status_code == 200, patched.text
        assert patched.json()["name"] == "renamed"
        assert patched.json()["schedule"]["cron"] == ["*/5 * * * *"]
        assert patched.json()["paused"] is True
        bad_patch = await client.patch(
            f"/v1/triggers/{trigger['trigger_id']}", json={"schedule": {"cron": ["nope"]}}
        )
        assert bad_patch.status_code == 422
        listed = (await client.get("/v1/triggers", params={"kind": "schedule"})).json()
        assert trigger["trigger_id"] in [t["trigger_id"] for t in listed["triggers"]]
        await client.delete(f"/v1/triggers/{trigger['trigger_id']}")
