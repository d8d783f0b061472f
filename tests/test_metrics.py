"""Prometheus metrics on the real stack: the API's ``/metrics`` and the worker's endpoint.

The stack is this module's own, so its worker serves metrics on a free port and every ``tether_``
series counts only the runs started here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api_helpers import collect_sse, wait_for_pending_interaction, wait_for_run
from tests.fixtures_db import migrated_database
from tether.devstack.processes import free_port
from tether.devstack.stack import Stack

FINAL = {"completed", "failed", "cancelled", "timed_out"}

Sample = tuple[str, dict[str, str], float]


@pytest.fixture(scope="module")
async def metrics_stack(
    temporal_address: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("metrics-stack")
    async with migrated_database("sqlite", workdir) as url:
        stack = Stack(
            temporal_address=temporal_address,
            database_url=url,
            workdir=workdir,
            TETHER_WORKER_METRICS_PORT=str(free_port()),
        )
        try:
            await stack.start()
            yield stack
        finally:
            stack.stop()


def worker_metrics_url(stack: Stack) -> str:
    return f"http://127.0.0.1:{stack.env['TETHER_WORKER_METRICS_PORT']}/metrics"


async def scrape(url: str, api_key: str | None = None) -> list[Sample]:
    """The samples at ``url``; the API's ``/metrics`` needs a key, the worker's does not."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(timeout=5.0, headers=headers) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]


def total(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples carrying ``labels``."""
    return sum(
        value
        for sample_name, sample_labels, value in samples
        if sample_name == name and labels.items() <= sample_labels.items()
    )


async def scrape_until(
    url: str, check: Callable[[list[Sample]], bool], timeout: float = 20.0
) -> list[Sample]:
    """Scrape until ``check`` holds: the series follow the store a moment later."""
    deadline = time.monotonic() + timeout
    while True:
        samples = await scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        await asyncio.sleep(0.1)


async def test_api_metrics_count_requests_by_route_template(metrics_stack: Stack) -> None:
    async with metrics_stack.client() as client:
        started = await client.post("/v1/runs", json={"agent": "echo", "input": "metrics"})
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        await wait_for_run(client, run_id, FINAL)
        for _ in range(3):
            assert (await client.get(f"/v1/runs/{run_id}")).status_code == 200
        assert (await client.get("/v1/runs/run_does_not_exist")).status_code == 404
        await collect_sse(client, run_id)  # a finished run's stream replays and closes
        assert (await client.get("/no/such/path")).status_code == 404

        response = await client.get("/metrics")
    assert response.status_code == 200
    assert run_id not in response.text, "raw paths must not become label values"
    samples = await scrape(f"{metrics_stack.api_url}/metrics", metrics_stack.api_key)

    requests = "tether_api_requests_total"
    one_run = {"method": "GET", "route": "/v1/runs/{run_id}"}
    assert total(samples, requests, **one_run, status="200") >= 3
    assert total(samples, requests, **one_run, status="404") >= 1
    assert total(samples, requests, method="POST", route="/v1/runs", status="202") >= 1
    assert total(samples, requests, route="/v1/runs/{run_id}/stream", status="200") >= 1
    assert total(samples, requests, route="<unmatched>", status="404") >= 1

    count = "tether_api_request_duration_seconds_count"
    assert total(samples, count, **one_run, status="200") >= 3
    buckets = [
        labels
        for name, labels, _ in samples
        if name == "tether_api_request_duration_seconds_bucket"
        and labels.get("route") == "/v1/runs/{run_id}"
    ]
    assert any(labels["le"] == "+Inf" for labels in buckets)


async def test_worker_exposes_sdk_and_run_metrics(metrics_stack: Stack) -> None:
    url = worker_metrics_url(metrics_stack)
    before = await scrape(url)
    async with metrics_stack.client() as client:
        started = await client.post("/v1/runs", json={"agent": "echo", "input": "count me"})
        assert started.status_code == 202, started.text
        done = await wait_for_run(client, started.json()["run_id"], FINAL)
    assert done["status"] == "completed", done

    def counted(samples: list[Sample]) -> bool:
        finished = "tether_runs_finished_total"
        return total(samples, finished, agent="echo", status="completed") > total(
            before, finished, agent="echo", status="completed"
        )

    after = await scrape_until(url, counted)
    # The Temporal SDK's own series, from the runtime's Prometheus exporter.
    assert any(name.startswith("temporal_workflow_") for name, _, _ in after)
    assert any(name.startswith("temporal_activity_") for name, _, _ in after)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("tether_runs_started_total", agent="echo") == 1
    assert delta("tether_runs_finished_total", agent="echo", status="completed") == 1
    assert delta("tether_runs_finished_total", status="failed") == 0
    # Each stored transcript row counted once, on this stack's own database.
    assert delta("tether_transcript_events_persisted_total") == done["last_seq"]
    labels = next(labels for name, labels, _ in after if name == "tether_runs_finished_total")
    assert labels["task_queue"] == metrics_stack.task_queue


async def test_worker_gauge_follows_pending_interactions(metrics_stack: Stack) -> None:
    url = worker_metrics_url(metrics_stack)
    pending = "tether_interactions_pending"
    async with metrics_stack.client() as client:
        started = await client.post(
            "/v1/runs", json={"agent": "approval-demo", "input": "clean the build folder"}
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        interaction = await wait_for_pending_interaction(client, run_id)
        waiting = await scrape_until(url, lambda s: total(s, pending) == 1)
        assert total(waiting, pending) == 1

        answer = await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}},
        )
        assert answer.status_code == 202, answer.text
        done = await wait_for_run(client, run_id, FINAL)
        assert done["status"] == "completed", done
    answered = await scrape_until(url, lambda s: total(s, pending) == 0)
    assert total(answered, pending) == 0
    assert any(name == pending for name, _, _ in answered)
