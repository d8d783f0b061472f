"""The approval-demo path through the HTTP API on the real stack, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json

import pytest

from store.keys import Role
from tests.api_helpers import collect_sse, sse_events, wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack


@pytest.mark.parametrize("choice", ["allow", "deny"])
async def test_approval_demo_end_to_end(any_stack: Stack, choice: str) -> None:
    async with any_stack.client() as client:
        started = await client.post(
            "/v1/runs", json={"agent": "approval-demo", "input": "clean the build folder"}
        )
        assert started.status_code == 202, started.text
        run = started.json()
        run_id = run["run_id"]
        assert run["status"] in {"running", "waiting_for_input"}  # the runner accepted it
        assert run["replica_id"]

        streamed = asyncio.create_task(collect_sse(client, run_id))
        interaction = await wait_for_pending_interaction(client, run_id)
        assert interaction["kind"] == "permission"
        assert {o["option_id"] for o in interaction["options"]} == {"allow", "deny"}
        assert interaction["tool_call"] is not None
        waiting = await wait_for_run(client, run_id, {"waiting_for_input"})
        assert waiting["pending_interaction"]["interaction_id"] == interaction["interaction_id"]

        # Answered with an operator key named alice: the key's name is the responder.
        alice = await any_stack.create_key(Role.OPERATOR, name="alice")
        async with any_stack.client(alice) as as_alice:
            answer = await as_alice.post(
                f"/v1/interactions/{interaction['interaction_id']}/respond",
                json={"response": {"option_id": choice}},
            )
        assert answer.status_code == 202, answer.text

        done = await wait_for_run(client, run_id, {"completed", "failed", "cancelled"})
        assert done["status"] == "completed", done
        output = done["result"]["output"].lower()
        assert ("denied" in output) == (choice == "deny"), output
        assert done["ended_at"] and done["duration_ms"] is not None

        sse = await asyncio.wait_for(streamed, 30)
        assert sse[-1]["event"] == "end"
        assert sse[-1]["data"]["status"] == "completed"
        sse_events = [e["data"] for e in sse[:-1]]
        assert [int(e["id"]) for e in sse[:-1]] == [e["seq"] for e in sse_events]

        page = (await client.get(f"/v1/runs/{run_id}/events")).json()["events"]
        assert page == sse_events
        assert [e["seq"] for e in page] == list(range(1, len(page) + 1))
        types = [e["type"] for e in page]
        assert types[0] == "run.started" and types[-1] == "run.completed"
        assert "interaction.requested" in types and "interaction.resolved" in types
        assert done["last_seq"] == len(page)

        resolved = (await client.get(f"/v1/interactions/{interaction['interaction_id']}")).json()
        assert resolved["status"] == "resolved"
        assert resolved["response"] == {"option_id": choice}
        assert resolved["responder"] == "alice"

        history = (await client.get(f"/v1/runs/{run_id}/history")).json()["transitions"]
        assert [t["status"] for t in history] == [
            "dispatching",
            "running",
            "waiting_for_input",
            "running",
            "completed",
        ]


async def test_a_question_seen_on_the_stream_can_be_answered_at_once(any_stack: Stack) -> None:
    """The interaction's row commits with its ``interaction.requested`` event, so an answer
    sent the moment the stream shows the question is accepted, never ``404`` (it was refused
    in most runs while the row lagged behind the event)."""
    refused = []
    async with any_stack.client() as client:
        for _ in range(5):
            started = await client.post("/v1/runs", json={"agent": "approval-demo"})
            run_id = started.json()["run_id"]
            async for _, event, data in sse_events(client, run_id):
                if event == "interaction.requested":
                    interaction_id = json.loads(data)["data"]["interaction_id"]
                    answer = await client.post(
                        f"/v1/interactions/{interaction_id}/respond",
                        json={"response": {"option_id": "allow"}},
                    )
                    if answer.status_code != 202:
                        refused.append(answer.text)
                    break
            done = await wait_for_run(client, run_id, {"completed", "failed", "cancelled"})
            assert done["status"] == "completed", done
    assert refused == []
