"""AgentCatalogWorkflow: keeps the store's agent catalogue in step with the runners.

The API validates agent names against the store (it never calls a runner); this workflow
refreshes that catalogue on an interval and on a ``refresh`` signal. One per namespace.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.catalog import CatalogActivities
    from workflows.types import CatalogInput

# Keep the history short: start afresh after this many syncs.
SYNCS_PER_EXECUTION = 200


@workflow.defn
class AgentCatalogWorkflow:
    def __init__(self) -> None:
        self._refresh = False

    @workflow.run
    async def run(self, inp: CatalogInput) -> None:
        for _ in range(SYNCS_PER_EXECUTION):
            self._refresh = False
            workflow.set_current_details("Syncing the agent catalogue from the runners")
            await workflow.execute_activity_method(
                CatalogActivities.sync_agents,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
                ),
                summary="sync agents",
            )
            workflow.set_current_details(f"Next sync in {inp.interval_s:.0f}s or on refresh")
            try:
                await workflow.wait_condition(
                    lambda: self._refresh, timeout=timedelta(seconds=inp.interval_s)
                )
            except TimeoutError:
                pass
        workflow.continue_as_new(inp)

    @workflow.signal
    def refresh(self) -> None:
        self._refresh = True
