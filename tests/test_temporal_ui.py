"""What an operator sees in the Temporal UI: search attributes, summary, details, current
details, activity summaries, memo; and the README's list queries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether import temporal as sa
from tether.devstack.stack import Stack
from tether.ids import session_workflow_id


async def _list(client: Client, query: str, expect: int, timeout: float = 10.0) -> list:
    """Visibility is eventually consistent: poll until ``expect`` executions match."""
    found: list = []
    for _ in range(int(timeout / 0.1)):
        found = [e async for e in client.list_workflows(query)]
        if len(found) >= expect:
            return found
        await asyncio.sleep(0.1)
    return found


async def test_a_waiting_run_reads_well_in_the_ui(stack: Stack, temporal_client: Client) -> None:
    async with stack.client() as client:
        run = (
            await client.post(
                "/v1/runs", json={"agent": "approval-demo", "input": "clean the build folder"}
            )
        ).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        await wait_for_run(client, run["run_id"], {"waiting_for_input"})

        handle = temporal_client.get_workflow_handle(
            session_workflow_id(run["project_id"], run["session_id"])
        )
        description = await handle.describe()
        summary = await description.static_summary()
        assert summary == f"{run['run_id']} · approval-demo · session {run['session_id']}"
        details = await description.static_details()
        assert details is not None and "clean the build folder" in details
        assert f"/v1/runs/{run['run_id']}/stream" in details
        attributes = description.typed_search_attributes
        assert attributes.get(sa.RUN_ID) == run["run_id"]
        assert attributes.get(sa.SESSION_ID) == run["session_id"]
        assert attributes.get(sa.AGENT) == "approval-demo"
        assert attributes.get(sa.PROJECT_ID) == "default"
        assert attributes.get(sa.RUN_STATUS) == "waiting_for_input"
        memo = await description.memo()
        assert memo["links"]["run"].endswith(f"/v1/runs/{run['run_id']}")

        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        current = metadata.current_details
        assert "Waiting for approval" in current and "rm -rf build/" in current
        assert "options allow/deny" in current and interaction["interaction_id"] in current

        # "Which runs are waiting for a human right now?" is one query.
        waiting = await _list(
            temporal_client,
            f'TetherRunStatus = "waiting_for_input" AND TetherRunId = "{run["run_id"]}"',
            expect=1,
        )
        assert [e.id for e in waiting] == [
            session_workflow_id(run["project_id"], run["session_id"])
        ]

        await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}},
        )
        await wait_for_run(client, run["run_id"], {"completed"})

    history = await handle.fetch_history()
    summaries = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            payload = event.user_metadata.summary
            summaries.append((await temporal_client.data_converter.decode([payload], [str]))[0])
    # Store projections are local activities (markers); the runner calls are listed in order.
    assert summaries[:2] == ["dispatch approval-demo", "follow from seq 0"]
    assert "deliver answer allow" in summaries
    assert summaries[-1].startswith("follow from seq ")


async def test_readme_queries_find_failed_runs_of_an_agent_today(
    stack: Stack, temporal_client: Client
) -> None:
    async with stack.client() as client:
        run = (
            await client.post(
                "/v1/runs", json={"agent": "scripted", "input": {"steps": [{"fail": "boom"}]}}
            )
        ).json()
        await wait_for_run(client, run["run_id"], {"failed"})
    today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z")
    found = await _list(
        temporal_client,
        f'TetherRunStatus = "failed" AND TetherAgent = "scripted" AND StartTime >= "{today}"',
        expect=1,
    )
    assert session_workflow_id(run["project_id"], run["session_id"]) in [e.id for e in found]
