"""Handshake latency: ``POST /v1/runs`` -> 202 accepted, next to a bare update-with-start.

Starts its own tuned Temporal dev server and a full stack (runner, worker, API on SQLite),
then measures, in the same run:
- ``tether``: POST /v1/runs (echo agent, new session) until the 202 with the runner's accept;
- ``bare``: update-with-start of a trivial workflow whose update returns at once.

Usage: ``python -m bench.handshake [--runs 50]``. Prints p50/p95 and the ratio; writes JSON to
``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Worker

from bench.bare_workflow import BareWorkflow
from tether.devstack.stack import Stack, standalone_stack


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def bare_round_trips(client: Client, runs: int) -> list[float]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[BareWorkflow]):
        samples = []
        for i in range(runs + 5):
            start = WithStartWorkflowOperation(
                BareWorkflow.run,
                id=f"bare-{uuid.uuid4().hex}",
                task_queue=queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
            t0 = time.perf_counter()
            await client.execute_update_with_start_workflow(
                BareWorkflow.ping, start_workflow_operation=start
            )
            if i >= 5:  # warm-up
                samples.append((time.perf_counter() - t0) * 1000)
    return samples


async def tether_handshakes(stack: Stack, runs: int) -> tuple[list[float], dict[str, int]]:
    samples: list[float] = []
    statuses: dict[str, int] = {}
    async with stack.client() as client:
        for i in range(runs + 5):
            t0 = time.perf_counter()
            response = await client.post("/v1/runs", json={"agent": "echo", "input": "hi"})
            elapsed = (time.perf_counter() - t0) * 1000
            response.raise_for_status()
            if i >= 5:
                samples.append(elapsed)
                status = response.json()["status"]
                statuses[status] = statuses.get(status, 0) + 1
    return samples, statuses


async def main(runs: int) -> dict:
    async with standalone_stack() as (env, stack):
        # Interleave the two measurements so machine noise hits both alike.
        tether: list[float] = []
        bare: list[float] = []
        statuses: dict[str, int] = {}
        for _ in range(2):
            samples, seen = await tether_handshakes(stack, runs // 2)
            tether += samples
            for status, count in seen.items():
                statuses[status] = statuses.get(status, 0) + count
            bare += await bare_round_trips(env.client, runs // 2)

    result = {
        "when": datetime.now(UTC).isoformat(),
        "runs": len(tether),
        "tether_post_202_ms": {
            "p50": round(statistics.median(tether), 1),
            "p95": round(percentile(tether, 0.95), 1),
        },
        "bare_update_with_start_ms": {
            "p50": round(statistics.median(bare), 1),
            "p95": round(percentile(bare, 0.95), 1),
        },
        "ratio_p50": round(statistics.median(tether) / statistics.median(bare), 2),
        "statuses": statuses,
    }
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    outcome = asyncio.run(main(args.runs))
    print(json.dumps(outcome, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"handshake-{int(time.time())}.json").write_text(json.dumps(outcome, indent=2))
