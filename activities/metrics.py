"""Worker metrics: the Temporal SDK's Prometheus exporter, with Tether's own series on it.

One scrape target per worker, ``http://{worker_metrics_host}:{worker_metrics_port}/metrics``.
The SDK runtime serves its metrics there (``temporal_*``: task slots, poll and schedule-to-start
latencies, workflow and activity outcomes), and Tether records its series through the same
runtime's metric meter, so they appear beside them:

- ``tether_runs_started_total{agent}``: runs recorded as moving to ``dispatching``;
- ``tether_runs_finished_total{agent, status}``: runs recorded in a terminal status;
- ``tether_transcript_events_persisted_total``: transcript rows newly written (a retried batch
  counts only the rows it added);
- ``tether_interactions_pending``: interactions pending in the store right now.

The counters are recorded by the activities (``activity.metric_meter()``, so they also carry
``namespace``, ``task_queue`` and ``activity_type``). They count record activities that
succeeded: an activity retried after its write committed (its completion was lost) counts twice.
That is rare, and the store, not these series, is the record of truth. Outside a worker
(activity unit tests, metrics disabled) the meter records nothing.

The pending gauge is read from the store (``store.interactions.count_pending``) instead of being
moved up and down by activities: a retried record cannot skew it, a restarted worker reports it
right away, and the SDK's gauges cannot go negative (a run's question and its answer may be
recorded by different workers). Each worker refreshes it after it records an interaction and
every ``PENDING_REFRESH_S``; with several workers, aggregate it with ``max``, not ``sum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.common import MetricMeter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from store import interactions
from tether.settings import Settings

log = logging.getLogger("tether.metrics")

RUNS_STARTED = "tether_runs_started_total"
RUNS_FINISHED = "tether_runs_finished_total"
EVENTS_PERSISTED = "tether_transcript_events_persisted_total"
INTERACTIONS_PENDING = "tether_interactions_pending"

PENDING_REFRESH_S = 15.0

# Set by ``interaction_recorded`` so the gauge follows a change without waiting a full period;
# created by the watcher, in its event loop.
_interactions_changed: asyncio.Event | None = None


def install_worker_runtime(settings: Settings) -> Runtime | None:
    """Make the default Temporal runtime export Prometheus metrics; call before connecting.

    Returns the runtime, or ``None`` when ``worker_metrics_port`` is 0 or the port is taken (the
    worker still runs; the health check on the port tells an operator).
    """
    if not settings.worker_metrics_port:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    try:
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:  # the exporter could not bind
        log.warning("worker metrics disabled: %s", err)
        return None
    Runtime.set_default(runtime, error_if_already_set=False)
    log.info("worker metrics on http://%s/metrics", address)
    return runtime


def _meter() -> MetricMeter:
    try:
        return activity.metric_meter()
    except RuntimeError:  # not in an activity
        return MetricMeter.noop


def run_started(agent: str) -> None:
    _meter().create_counter(RUNS_STARTED, "Runs that moved to dispatching.").add(
        1, {"agent": agent}
    )


def run_finished(agent: str, status: str) -> None:
    _meter().create_counter(RUNS_FINISHED, "Runs that reached a terminal status.").add(
        1, {"agent": agent, "status": status}
    )


def events_persisted(count: int) -> None:
    if count > 0:
        _meter().create_counter(
            EVENTS_PERSISTED, "Transcript events newly written to the store."
        ).add(count)


def interaction_recorded() -> None:
    """An interaction row changed: refresh the pending gauge soon."""
    if _interactions_changed is not None:
        _interactions_changed.set()


async def watch_pending_interactions(
    db: async_sessionmaker[AsyncSession], meter: MetricMeter, every_s: float = PENDING_REFRESH_S
) -> None:
    """Keep ``tether_interactions_pending`` equal to the store's count; runs until cancelled."""
    global _interactions_changed
    changed = _interactions_changed = asyncio.Event()
    gauge = meter.create_gauge(INTERACTIONS_PENDING, "Interactions waiting for a human.")
    while True:
        changed.clear()
        try:
            async with db() as session:
                pending = await interactions.count_pending(session)
            gauge.set(pending)
        except Exception as err:  # a store hiccup must not stop the worker; try again later
            log.warning("could not count pending interactions: %s", err)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), every_s)


@contextlib.asynccontextmanager
async def pending_interactions_gauge(
    db: async_sessionmaker[AsyncSession], runtime: Runtime | None
) -> AsyncIterator[None]:
    """Run ``watch_pending_interactions`` on ``runtime``'s meter for the body's duration."""
    if runtime is None:
        yield
        return
    task = asyncio.create_task(watch_pending_interactions(db, runtime.metric_meter))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
