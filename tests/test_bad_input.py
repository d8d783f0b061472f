"""Bad input gets a clear 4xx with the JSON error shape, and changes nothing."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator

from temporalio.client import Client, WorkflowExecutionStatus

from api.signatures import sign
from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack
from tether.ids import session_workflow_id
from tether.settings import Settings


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


async def test_unknown_agent_is_422_and_starts_nothing(stack: Stack) -> None:
    session = f"bad-{uuid.uuid4().hex[:8]}"
    async with stack.client() as client:
        response = await client.post(f"/v1/sessions/{session}/runs", json={"agent": "nope"})
        assert response.status_code == 422
        error = _error(response)
        assert error["code"] == "unknown_agent"
        assert "echo" in error["details"]["available"]
        assert (await client.get(f"/v1/sessions/{session}")).status_code == 404
        runs = (await client.get("/v1/runs", params={"session_id": session})).json()["runs"]
        assert runs == []


async def test_malformed_json_and_invalid_bodies(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post(
            "/v1/runs", content=b'{"agent": "echo",', headers={"content-type": "application/json"}
        )
        assert response.status_code == 422
        assert _error(response)["code"] == "malformed_json"

        response = await client.post("/v1/runs", json={"input": "no agent"})
        assert response.status_code == 422
        assert _error(response)["code"] == "invalid_request"

        response = await client.post("/v1/runs", json={"agent": "echo", "surprise": 1})
        assert response.status_code == 422

        response = await client.post("/v1/sessions/-bad id/runs", json={"agent": "echo"})
        assert response.status_code == 422

        response = await client.get("/v1/runs", params={"cursor": "not-a-cursor"})
        assert response.status_code == 422
        assert _error(response)["code"] == "invalid_cursor"


async def test_unknown_ids_are_404(stack: Stack) -> None:
    async with stack.client() as client:
        for path in (
            "/v1/runs/run_missing",
            "/v1/runs/run_missing/events",
            "/v1/runs/run_missing/stream",
            "/v1/runs/run_missing/history",
            "/v1/interactions/int_missing",
            "/v1/sessions/missing-session",
        ):
            response = await client.get(path)
            assert response.status_code == 404, path
            assert _error(response)["code"].endswith("_not_found")
        response = await client.post("/v1/runs/run_missing/cancel")
        assert response.status_code == 404
        response = await client.post(
            "/v1/interactions/int_missing/respond", json={"response": {"option_id": "allow"}}
        )
        assert response.status_code == 404
        assert _error(response)["code"] == "interaction_not_found"


async def test_invalid_answer_then_double_answer(stack: Stack) -> None:
    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        url = f"/v1/interactions/{interaction['interaction_id']}/respond"

        for bad in ({"option_id": "maybe"}, {"text": "yes"}, {}):
            response = await client.post(url, json={"response": bad})
            assert response.status_code == 422, bad
            assert _error(response)["code"] == "invalid_response"
        response = await client.post(url, json={"response": "allow"})
        assert response.status_code == 422

        still = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert still["status"] == "pending"
        assert (await client.get(f"/v1/runs/{run['run_id']}")).json()["status"] == (
            "waiting_for_input"
        )

        first = await client.post(url, json={"response": {"option_id": "deny"}})
        assert first.status_code == 202
        await wait_for_run(client, run["run_id"], {"completed"})
        second = await client.post(url, json={"response": {"option_id": "allow"}})
        assert second.status_code == 409
        assert _error(second)["code"] == "interaction_not_pending"
        final = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert final["response"] == {"option_id": "deny"}


async def test_concurrent_answers_first_wins_rest_recorded_ignored(stack: Stack) -> None:
    import asyncio

    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        url = f"/v1/interactions/{interaction['interaction_id']}/respond"
        answers = [{"option_id": "allow"}, {"option_id": "deny"}] * 3
        responses = await asyncio.gather(
            *(
                client.post(url, json={"response": a, "responder": f"r{i}"})
                for i, a in enumerate(answers)
            )
        )
        assert all(r.status_code in (202, 409) for r in responses)
        accepted = sum(r.status_code == 202 for r in responses)
        done = await wait_for_run(client, run["run_id"], {"completed"})
        record = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert record["status"] == "resolved"
        # One answer won; every other accepted one is on the record as ignored.
        assert len(record["ignored_responses"]) == accepted - 1
        won_deny = record["response"] == {"option_id": "deny"}
        assert ("denied" in done["result"]["output"].lower()) == won_deny


# Strict input: every case below is a 4xx with the JSON envelope, and nothing is written.

BIG = 2**63  # one past what a transcript position (64-bit signed) can hold

STRICT_BODIES = {
    # what the body holds: (raw JSON text of the run's input, the error code)
    "NaN": ("NaN", "non_finite_number"),
    "Infinity": ("Infinity", "non_finite_number"),
    "-Infinity": ("[1, -Infinity]", "non_finite_number"),
    "1e400": ('{"x": 1e400}', "non_finite_number"),
    "lone surrogate": ('"\\ud800"', "unpaired_surrogate"),
    "lone surrogate in a key": ('{"\\udfff": 1}', "unpaired_surrogate"),
    "NUL": ('"a\\u0000b"', "null_character"),
    "nested 500 deep": ("[" * 500 + "]" * 500, "json_too_deep"),
    "nested 100000 deep": ("[" * 100_000 + "]" * 100_000, "json_too_deep"),
    "nested 65 deep in objects": ('{"a": ' * 65 + "1" + "}" * 65, "json_too_deep"),
    "an integer of 5000 digits": ("1" * 5000, "malformed_json"),
}


async def test_strict_json_bodies_are_422_and_start_nothing(stack: Stack) -> None:
    async with stack.client() as client:
        for case, (input_json, code) in STRICT_BODIES.items():
            session = f"strict-{uuid.uuid4().hex[:8]}"
            body = '{"agent": "echo", "input": ' + input_json + "}"
            response = await client.post(
                f"/v1/sessions/{session}/runs",
                content=body.encode(),
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 422, (case, response.text)
            assert _error(response)["code"] == code, case
            assert (await client.get(f"/v1/sessions/{session}")).status_code == 404, case
            listed = await client.get("/v1/runs", params={"session_id": session})
            assert listed.json()["runs"] == [], case

        # Every JSON body, not only a run's: an answer is checked before its route runs.
        response = await client.post(
            "/v1/interactions/int_missing/respond",
            content=b'{"response": {"option_id": NaN}}',
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert response.status_code == 422
        assert _error(response)["code"] == "non_finite_number"

        # Nesting up to the bound is accepted and stored as sent.
        deep: object = "leaf"
        for _ in range(62):  # + the body object + the input's first level = 64
            deep = [deep]
        response = await client.post("/v1/runs", json={"agent": "echo", "input": deep})
        assert response.status_code == 202, response.text
        run = await wait_for_run(client, response.json()["run_id"], {"completed"})
        assert run["input"] == deep


async def test_positions_and_cursors_are_parsed_strictly(stack: Stack) -> None:
    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "echo", "input": "hi"})).json()
        run = await wait_for_run(client, run["run_id"], {"completed"})
        events = f"/v1/runs/{run['run_id']}/events"
        stream = f"/v1/runs/{run['run_id']}/stream"

        for params in ({"after": BIG}, {"after": -1}, {"limit": 2**70}, {"limit": 0}):
            response = await client.get(events, params=params)
            assert response.status_code == 422, params
            assert _error(response)["code"] == "invalid_request", params
        last = (await client.get(events, params={"after": BIG - 1})).json()
        assert last["events"] == [] and last["next_after"] is None

        response = await client.get(stream, params={"after": BIG})
        assert response.status_code == 422
        assert response.headers["content-type"].startswith("application/json")
        # Header bytes are Latin-1: b"\xb2" is "²", which str.isdigit accepts and int refuses.
        for value in (
            str(BIG).encode(),
            b"\xb2",
            b"\xb9\xb2",
            "\uff11\uff12".encode(),  # fullwidth digits
            b"1 2",
            b"-1",
            b"0x10",
            b"1" * 40,
            b"",
        ):
            response = await client.get(stream, headers={"Last-Event-ID": value})
            assert response.status_code == 422, value
            assert _error(response)["code"] == "invalid_last_event_id", value
        # The largest position is a valid one: nothing after it, then the end of the stream.
        response = await client.get(stream, headers={"Last-Event-ID": str(BIG - 1)})
        assert response.status_code == 200
        assert response.text.startswith("event: end\n")

        forged = [
            b"[" * 5000,  # decodes to JSON nested past the decoder's recursion limit
            b'{"l": "runs", "o": "created_at", "d": "desc", "k": ["2026-01-01T00:00:00+00:00",'
            b' "\\ud800"]}',
            b'{"l": "runs", "o": "created_at", "d": "desc", "k": ["0001-01-01T00:00:00+05:00",'
            b' "run_x"]}',
        ]
        for raw in forged:
            cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
            response = await client.get("/v1/runs", params={"cursor": cursor})
            assert response.status_code == 422, raw[:60]
            assert _error(response)["code"] == "invalid_cursor"


async def test_bodies_over_the_limit_are_413_before_they_are_read(stack: Stack) -> None:
    limit = Settings().api_max_body_bytes
    session = f"big-{uuid.uuid4().hex[:8]}"
    url = f"/v1/sessions/{session}/runs"
    over = json.dumps({"agent": "echo", "input": "x" * limit}).encode()
    async with stack.client() as client:
        # Declared too large: refused on the Content-Length alone.
        response = await client.post(
            url, content=over, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        error = _error(response)
        assert error["code"] == "payload_too_large"
        assert error["details"] == {"max_body_bytes": limit}

        # Streamed without a length (chunked): refused once it grows past the limit.
        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(over), 64 * 1024):
                yield over[start : start + 64 * 1024]

        response = await client.post(
            url, content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert _error(response)["code"] == "payload_too_large"
        assert (await client.get(f"/v1/sessions/{session}")).status_code == 404

        # Every route has the limit, also the ones that take no body.
        response = await client.request("GET", "/v1/runs", content=over)
        assert response.status_code == 413


async def test_an_input_at_the_limit_runs_and_leaves_its_session_usable(
    stack: Stack, temporal_client: Client
) -> None:
    """The largest body accepted must not break the session's workflow (Temporal's payload
    limit): the run completes, its execution closes, and the session takes the next run."""
    limit = Settings().api_max_body_bytes
    session = f"limit-{uuid.uuid4().hex[:8]}"
    envelope = json.dumps({"agent": "echo", "input": ""}).encode()
    body = json.dumps({"agent": "echo", "input": "x" * (limit - len(envelope))}).encode()
    assert len(body) == limit
    async with stack.client() as client:
        url = f"/v1/sessions/{session}/runs"
        response = await client.post(
            url, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 202, response.text
        await wait_for_run(client, response.json()["run_id"], {"completed"})
        handle = temporal_client.get_workflow_handle(session_workflow_id(stack.project_id, session))
        await handle.result()  # the execution closed (a too large payload fails every task)
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

        response = await client.post(url, json={"agent": "echo", "input": "next"})
        assert response.status_code == 202, response.text
        await wait_for_run(client, response.json()["run_id"], {"completed"})


async def test_webhook_timestamps_and_bodies_are_parsed_strictly(stack: Stack) -> None:
    async with stack.client() as client:
        created = await client.post(
            "/v1/triggers",
            json={
                "name": f"strict-{uuid.uuid4().hex[:6]}",
                "kind": "webhook",
                "target": {"agent": "echo", "input": "{{ payload }}"},
            },
        )
        assert created.status_code == 201, created.text
        trigger = created.json()
        url = f"/v1/triggers/{trigger['trigger_id']}/fire"
        for stamp in (b"\xb2", b"9" * 5000):
            response = await client.post(
                url, content=b"{}", headers={"X-Tether-Timestamp": stamp, "X-Tether-Signature": "x"}
            )
            assert response.status_code == 401, stamp[:10]
            assert _error(response)["code"] == "invalid_signature"
        # A webhook body is read raw, and checked as strictly as any other.
        stamp_text = str(int(time.time()))
        body = b'{"x": NaN}'
        response = await client.post(
            url,
            content=body,
            headers={
                "X-Tether-Timestamp": stamp_text,
                "X-Tether-Signature": sign(trigger["secret"], stamp_text, body),
            },
        )
        assert response.status_code == 422
        assert _error(response)["code"] == "non_finite_number"
        deliveries = await client.get(f"/v1/triggers/{trigger['trigger_id']}/deliveries")
        assert deliveries.json()["deliveries"] == []


async def test_out_of_range_durations_and_instants_are_422(stack: Stack) -> None:
    """Numbers and instants that parse but that Temporal or the store cannot hold."""
    schedule = {"name": "range", "kind": "schedule", "target": {"agent": "echo", "input": "x"}}
    async with stack.client() as client:
        for config in (
            {"interval_s": 1e300},
            {"interval_s": 60, "jitter_s": 1e300},
            {"interval_s": 60, "catchup_window_s": 1e300},
            {"interval_s": 60, "start_at": "0001-01-01T00:00:00+05:00"},
        ):
            response = await client.post("/v1/triggers", json={**schedule, "schedule": config})
            assert response.status_code == 422, (config, response.text)
            assert _error(response)["code"] == "invalid_request"
        for params in (
            {"created_after": "0001-01-01T00:00:00+05:00"},
            {"created_before": "9999-12-31T23:59:59-05:00"},
        ):
            response = await client.get("/v1/runs", params=params)
            assert response.status_code == 422, params
        names = [t["name"] for t in (await client.get("/v1/triggers")).json()["triggers"]]
        assert "range" not in names
