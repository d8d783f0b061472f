"""Determinism: workflow histories replay against the current workflow code.

``tests/histories/*.json`` are histories recorded from real runs
(``python -m tests.record_histories`` writes them). A change that makes them fail to replay
would break runs in flight: version it with ``workflow.patched`` instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack
from tether.ids import session_workflow_id
from workflows.agent_catalog import AgentCatalogWorkflow
from workflows.session_run import SessionRunWorkflow

HISTORIES = Path(__file__).parent / "histories"


def _replayer() -> Replayer:
    return Replayer(
        workflows=[SessionRunWorkflow, AgentCatalogWorkflow],
        data_converter=pydantic_data_converter,
    )


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))  # noqa: ASYNC240
    await _replayer().replay_workflow(history)


async def test_fresh_approval_history_replays(stack: Stack, temporal_client: Client) -> None:
    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}},
        )
        await wait_for_run(client, run["run_id"], {"completed"})
    handle = temporal_client.get_workflow_handle(session_workflow_id(run["session_id"]))
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
