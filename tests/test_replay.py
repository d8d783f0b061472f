"""Determinism: workflow histories replay against the current workflow code.

``tests/histories/*.json`` are histories recorded from real runs
(``python -m tests.record_histories`` writes them), replayed with every workflow the worker
registers. A change that makes them fail to replay would break runs in flight: version it with
``workflow.patched`` instead. Every registered workflow type must have a recorded history.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.stack import Stack, stack_data_converter
from tether.ids import session_workflow_id

HISTORIES = Path(__file__).parent / "histories"


def registered_workflows() -> list[type]:
    """The workflow classes worker.py registers: its ``Worker(workflows=[...])``."""
    worker = importlib.import_module("worker")
    for node in ast.walk(ast.parse(inspect.getsource(worker))):
        if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "Worker"):
            continue
        for keyword in node.keywords:
            if keyword.arg == "workflows" and isinstance(keyword.value, ast.List):
                return [getattr(worker, ast.unparse(item)) for item in keyword.value.elts]
    raise AssertionError("found no Worker(workflows=[...]) in worker.py")


def _replayer() -> Replayer:
    # The recordings are in clear and fresh histories are encrypted: the codec replays both, as
    # a deployment that turns encryption on keeps replaying the histories it wrote before.
    return Replayer(workflows=registered_workflows(), data_converter=stack_data_converter())


def _workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]
    return started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"]


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))  # noqa: ASYNC240
    await _replayer().replay_workflow(history)


def test_every_registered_workflow_has_a_recorded_history() -> None:
    """A new workflow comes with a scenario in tests/record_histories.py and its recording."""
    recorded = {_workflow_type(path) for path in HISTORIES.glob("*.json")}
    # A workflow's type is its class name (none sets ``@workflow.defn(name=...)``).
    registered = {cls.__name__ for cls in registered_workflows()}
    assert registered, "worker.py registers no workflow"
    assert registered <= recorded, f"no recorded history of {sorted(registered - recorded)}"


async def test_fresh_approval_history_replays(stack: Stack, temporal_client: Client) -> None:
    async with stack.client() as client:
        run = (await client.post("/v1/runs", json={"agent": "approval-demo"})).json()
        interaction = await wait_for_pending_interaction(client, run["run_id"])
        await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}},
        )
        await wait_for_run(client, run["run_id"], {"completed"})
    handle = temporal_client.get_workflow_handle(
        session_workflow_id(run["project_id"], run["session_id"])
    )
    history = await handle.fetch_history()
    await _replayer().replay_workflow(history)
