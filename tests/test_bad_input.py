"""Bad input gets a clear 4xx with the JSON error shape, and changes nothing."""

from __future__ import annotations

import uuid

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack


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
