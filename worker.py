"""The Temporal worker: builds settings, clients and activity classes, then polls the queue."""

from __future__ import annotations

import asyncio
import logging
import signal

import httpx
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from activities.catalog import CatalogActivities
from activities.metrics import install_worker_runtime, pending_interactions_gauge
from activities.records import StoreActivities
from activities.runner_calls import RunActivities
from activities.triggers import TriggerActivities
from store.db import create_engine, session_factory
from tether.ids import catalog_workflow_id
from tether.settings import Settings, get_settings
from tether.temporal import connect
from workflows.agent_catalog import AgentCatalogWorkflow
from workflows.session_run import SessionRunWorkflow
from workflows.trigger_firing import TriggerFiringWorkflow
from workflows.types import CatalogInput

log = logging.getLogger("tether.worker")


async def ensure_catalog(client: Client, settings: Settings) -> None:
    """Start the agent catalogue sync for this queue if it is not running, and refresh it."""
    handle = await client.start_workflow(
        AgentCatalogWorkflow.run,
        CatalogInput(),
        id=catalog_workflow_id(settings.task_queue),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Agent catalogue sync",
    )
    await handle.signal(AgentCatalogWorkflow.refresh)


async def run_worker(settings: Settings) -> None:
    metrics_runtime = install_worker_runtime(settings)  # before connecting: clients bind to it
    client = await connect(settings)
    engine = create_engine(settings.database_url)
    db = session_factory(engine)
    # No library-level retries: Temporal retries activities.
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0)) as http:
        runs = RunActivities(db, http, settings)
        records = StoreActivities(db)
        catalog = CatalogActivities(db, http, settings)
        triggers = TriggerActivities(db, client, settings)
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[SessionRunWorkflow, AgentCatalogWorkflow, TriggerFiringWorkflow],
            activities=[
                runs.dispatch_run,
                runs.follow_run,
                runs.deliver_response,
                runs.cancel_run,
                runs.probe_run,
                records.record_run,
                records.record_interaction,
                catalog.sync_agents,
                triggers.start_delivery,
                triggers.submit_firing,
                triggers.record_delivery,
                triggers.run_outcome,
                triggers.cancel_target_run,
            ],
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with worker, pending_interactions_gauge(db, metrics_runtime):
            await ensure_catalog(client, settings)
            log.info("worker polling %s", settings.task_queue)
            await stop.wait()
            log.info("worker stopping")
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
