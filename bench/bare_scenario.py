"""The floor of the scenario bench: the scenario's steps on bare Temporal, with nothing else.

One workflow per run, started by update-with-start. The ``submit`` update records the run with
a local activity and returns (Tether's 202). The workflow then runs an activity that produces the
agent's 3 message events and its question (and writes nothing anywhere), waits for the answer
signal, and runs a final activity for the last event. The client sees the pause through the
``paused`` update, which returns once the question is there, and the finish through the
workflow's result.

Its worker runs in a process of its own (``python -m bench.bare_scenario --address A
--task-queue Q``), so the bench measures its memory and CPU the way it measures Tether's worker.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

TIMEOUT = timedelta(seconds=30)


@activity.defn
async def record(status: str) -> str:
    """Stands for Tether's ``record_run`` projection: a local activity that returns at once."""
    return status


@activity.defn
async def emit_events(prompt: str) -> list[dict]:
    """Stands for the agent's first part: 3 message events, then the question."""
    events = [{"type": "message", "data": {"text": f"step {i}"}} for i in range(1, 4)]
    events.append({"type": "interaction.requested", "data": {"prompt": prompt}})
    return events


@activity.defn
async def finish(answer: str) -> dict:
    """Stands for the agent's last part: one event, then the outcome."""
    return {"type": "message", "data": {"text": f"answered {answer}"}, "output": "ok"}


@workflow.defn
class BareScenarioWorkflow:
    def __init__(self) -> None:
        self._accepted = False
        self._question: str | None = None
        self._answer: str | None = None

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._accepted)
        events = await workflow.execute_activity(
            emit_events, "Run the tool?", start_to_close_timeout=TIMEOUT
        )
        self._question = str(events[-1]["data"]["prompt"])
        await workflow.wait_condition(lambda: self._answer is not None)
        last = await workflow.execute_activity(
            finish, self._answer or "", start_to_close_timeout=TIMEOUT
        )
        return str(last["output"])

    @workflow.update
    async def submit(self) -> str:
        status = await workflow.execute_local_activity(
            record, "running", start_to_close_timeout=TIMEOUT
        )
        self._accepted = True
        return status

    @workflow.update
    async def paused(self) -> str:
        await workflow.wait_condition(lambda: self._question is not None)
        return self._question or ""

    @workflow.signal
    def answer(self, option_id: str) -> None:
        self._answer = option_id


async def serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[BareScenarioWorkflow],
        activities=[record, emit_events, finish],
    ):
        print(f"bare worker polling {task_queue}", flush=True)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The bare-Temporal floor's worker.")
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.task_queue))
