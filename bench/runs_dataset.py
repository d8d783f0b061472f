"""The data set of the run-listing bench: runs, sessions and interactions spread like a real
project's, generated deterministically and bulk-loaded with COPY into a migrated database."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

PROJECT = "default"
RUNS_PER_SESSION = 20
AGENTS = {"echo": 40, "approval-demo": 25, "coder": 20, "researcher": 10, "triager": 5}
ENDINGS = {"completed": 85, "failed": 8, "cancelled": 5, "timed_out": 2}
TRIGGERS = ["nightly", "hourly", "weekly", "webhook-github", "webhook-jira"]


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _run_id(created: datetime, rng: random.Random) -> str:
    # Sortable like the API's UUIDv7 run IDs: milliseconds first, then randomness.
    return f"run_{int(created.timestamp() * 1000):012x}{rng.getrandbits(64):016x}"


Rows = list[tuple[Any, ...]]


def generate(runs: int, seed: int = 7) -> tuple[Rows, Rows, Rows]:
    """Rows for ``runs``, ``sessions`` and ``interactions``, in the COPY column orders below.

    Each session has one agent and ~20 runs, one after the other; 3% of sessions are busy
    (last run running or waiting for input, sometimes with queued runs behind it). Runs that
    wait have their pending interaction; a tenth of the others had one, now resolved.
    """
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sessions = max(1, runs // RUNS_PER_SESSION)
    run_rows: Rows = []
    session_rows: Rows = []
    interaction_rows: Rows = []
    for n in range(sessions):
        session_id = f"sess_{n:06d}"
        agent = _pick(rng, AGENTS)
        count = runs // sessions + (1 if n < runs % sessions else 0)
        busy = rng.random() < 0.03
        queued = rng.choice([0, 0, 1, 2]) if busy else 0
        created = now - timedelta(days=30) * rng.random()
        ids: list[tuple[str, str, datetime]] = []
        last_update = created
        for k in range(count):
            created += timedelta(seconds=rng.uniform(1, 900))
            run_id = _run_id(created, rng)
            remaining = count - k
            if busy and remaining <= queued:
                status = "queued"
            elif busy and remaining == queued + 1:
                status = rng.choice(["running", "waiting_for_input"])
            else:
                status = _pick(rng, ENDINGS)
            terminal = status in ENDINGS
            started = None if status == "queued" else created + timedelta(seconds=0.2)
            ended = created + timedelta(seconds=rng.uniform(1, 600)) if terminal else None
            updated = ended or started or created
            keyed = rng.random() < 0.3
            waiting = status == "waiting_for_input"
            if waiting or rng.random() < 0.1:
                interaction_rows.append(
                    (
                        f"int_{run_id}",
                        run_id,
                        session_id,
                        PROJECT,
                        "permission",
                        "Allow the tool call?",
                        "[]",
                        "pending" if waiting else "resolved",
                        created + timedelta(seconds=1),
                    )
                )
            run_rows.append(
                (
                    run_id,
                    session_id,
                    PROJECT,
                    agent,
                    status,
                    "agent_error" if status == "failed" else None,
                    rng.choice(TRIGGERS) if rng.random() < 0.1 else None,
                    f"key-{uuid.UUID(int=rng.getrandbits(128))}" if keyed else None,
                    json.dumps({"prompt": f"task {n}.{k}"}),
                    "{}",
                    created,
                    started,
                    updated,
                    ended,
                    rng.randrange(1, 200) if started else 0,
                    json.dumps({"input_tokens": rng.randrange(100, 9000)}),
                    json.dumps({"output": "done"}) if status == "completed" else None,
                    "{}",
                    3,
                    f"{rng.getrandbits(256):064x}" if keyed else None,
                    f"int_{run_id}" if waiting else None,
                )
            )
            ids.append((run_id, status, created))
            last_update = max(last_update, updated)
        unfinished = [(r, s) for r, s, _ in ids if s not in ENDINGS]
        active = next((r for r, s in unfinished if s != "queued"), None)
        active = active or next((r for r, _ in unfinished), None)
        active_status = dict(unfinished).get(active) if active else None
        status = (
            "waiting_for_input"
            if active_status == "waiting_for_input"
            else ("active" if active else "idle")
        )
        session_rows.append(
            (
                session_id,
                PROJECT,
                agent,
                ids[0][2],
                last_update,
                ids[-1][0],
                "{}",
                status,
                active,
                len(ids),
            )
        )
    return run_rows, session_rows, interaction_rows


RUN_COLUMNS = [
    "run_id",
    "session_id",
    "project_id",
    "agent",
    "status",
    "status_reason",
    "trigger_id",
    "idempotency_key",
    "input",
    "metadata",
    "created_at",
    "started_at",
    "updated_at",
    "ended_at",
    "last_seq",
    "usage",
    "result",
    "attempts",
    "version",
    "request_hash",
    "pending_interaction_id",
]
INTERACTION_COLUMNS = [
    "interaction_id",
    "run_id",
    "session_id",
    "project_id",
    "kind",
    "prompt",
    "options",
    "status",
    "requested_at",
]
SESSION_COLUMNS = [
    "session_id",
    "project_id",
    "agent",
    "created_at",
    "updated_at",
    "last_run_id",
    "metadata",
    "status",
    "active_run_id",
    "run_count",
]


async def load(pg_url: str, runs: int) -> dict[str, Any]:
    """Bulk-load the generated rows with COPY, then VACUUM ANALYZE; returns counts, timings."""
    t0 = time.perf_counter()
    run_rows, session_rows, interaction_rows = generate(runs)
    generated = time.perf_counter() - t0
    conn = await asyncpg.connect(pg_url)
    try:
        # COPY cannot fill columns from defaults it is not given: pass the zero counters.
        extra = ["events", "steps"]
        t1 = time.perf_counter()
        await conn.copy_records_to_table(
            "runs", records=[(*row, 0, 0) for row in run_rows], columns=RUN_COLUMNS + extra
        )
        await conn.copy_records_to_table("sessions", records=session_rows, columns=SESSION_COLUMNS)
        await conn.copy_records_to_table(
            "interactions",
            records=[(*row, "[]") for row in interaction_rows],
            columns=[*INTERACTION_COLUMNS, "ignored_responses"],
        )
        copied = time.perf_counter() - t1
        # What autovacuum does to a table in steady state: statistics, and the visibility map
        # that lets count probes and index-only scans skip the heap.
        for table in ("runs", "sessions", "interactions"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()
    return {
        "runs": len(run_rows),
        "sessions": len(session_rows),
        "interactions": len(interaction_rows),
        "generate_s": round(generated, 2),
        "copy_s": round(copied, 2),
    }


# Measurement.
