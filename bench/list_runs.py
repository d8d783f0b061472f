"""Listing at scale on PostgreSQL: ``store.runs.list_runs`` and ``store.sessions.list_sessions``.

Creates a fresh database on the PostgreSQL server (``--pg-url``, else ``TETHER_TEST_PG_URL``,
else ``postgresql://postgres@127.0.0.1:5432/postgres``), migrates it, bulk-loads ``--runs``
runs across ``runs / 20`` sessions with COPY (agents, statuses, triggers and idempotency keys
spread like a real project), VACUUM ANALYZEs, then measures through the store's own query
functions:

- named scenarios (the issue's figure first: a filtered page, its next page, a session),
  ``--calls`` times each: p50/p95 in ms, and the plan PostgreSQL chose (indexes, sort);
- a grid of every filter x order x direction, first and second page, ``--grid-calls`` times
  each: p50 of the call and PostgreSQL's execution time, with the slowest cells.

Prints JSON (the grid summarized), writes all of it to ``bench/results/``, drops the database.

Usage: ``python -m bench.list_runs [--runs 100000] [--calls 200] [--grid-calls 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bench.runs_dataset import PROJECT, load
from store import runs, sessions
from store.db import create_engine, migrate, session_factory

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
WARM_UP = 10

Factory = async_sessionmaker[AsyncSession]


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class PlanRecorder:
    """Captures the SQL the store sends, to ask PostgreSQL how it runs it."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.statements.append((statement, params))

    async def plans(self, engine: AsyncEngine) -> list[dict[str, Any]]:
        captured, self.statements = self.statements, []
        summaries = []
        async with engine.connect() as conn:
            for statement, params in captured:
                result = await conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, TIMING OFF, BUFFERS, FORMAT JSON) " + statement, params
                )
                raw = result.scalar_one()
                plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]
                summaries.append(_summarize(plan))
        return summaries


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _summarize(plan: dict[str, Any]) -> dict[str, Any]:
    nodes = list(_nodes(plan["Plan"]))
    scans = [
        f"{n['Node Type']} on {n.get('Index Name') or n.get('Relation Name')}"
        for n in nodes
        if "Scan" in n["Node Type"]
    ]
    return {
        "scans": scans,
        "sort": any(n["Node Type"] in ("Sort", "Incremental Sort") for n in nodes),
        "shared_buffers_hit": plan["Plan"].get("Shared Hit Blocks"),
        "execution_ms": plan["Execution Time"],
    }


async def timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    samples = []
    for i in range(calls + WARM_UP):
        t0 = time.perf_counter()
        await call()
        if i >= WARM_UP:
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


def scenarios(factory: Factory, probe: dict[str, Any]) -> dict[str, Callable[[], Awaitable[Any]]]:
    """Name -> one call of the store query under test."""

    def runs_page(**kwargs: Any) -> Callable[[], Awaitable[Any]]:
        async def call() -> Any:
            async with factory() as session:
                return await runs.list_runs(session, PROJECT, limit=50, **kwargs)

        return call

    def sessions_page(**kwargs: Any) -> Callable[[], Awaitable[Any]]:
        async def call() -> Any:
            async with factory() as session:
                return await sessions.list_sessions(session, PROJECT, limit=50, **kwargs)

        return call

    filtered = {"statuses": ["completed", "failed"], "agent": "approval-demo"}
    day = probe["newest"] - timedelta(days=7)
    oldest_day = probe["newest"] - timedelta(days=30)
    named = {
        "status[completed,failed]+agent, created_at desc, page 1": runs_page(**filtered),
        "status[completed,failed]+agent, created_at desc, page 2": runs_page(
            **filtered, cursor=probe["filtered_cursor"]
        ),
        "status[completed,failed]+agent, created_at desc, deep page (~half way)": runs_page(
            **filtered, cursor=probe["deep_cursor"]
        ),
        "session_id, created_at desc": runs_page(session_id=probe["session_id"]),
        "status[waiting_for_input] (rare), created_at desc": runs_page(
            statuses=["waiting_for_input"]
        ),
        "trigger_id, created_at desc": runs_page(trigger_id="nightly"),
        "agent (5%), updated_at desc": runs_page(agent="triager", order_by="updated_at"),
        "created range (1 day), updated_at desc": runs_page(
            created_after=day, created_before=day + timedelta(days=1), order_by="updated_at"
        ),
        # The order index is walked from its newest end down to the range: the worst case.
        "created range (oldest day), updated_at desc": runs_page(
            created_after=oldest_day,
            created_before=oldest_day + timedelta(days=1),
            order_by="updated_at",
        ),
        "created range (1 day), created_at desc": runs_page(
            created_after=day, created_before=day + timedelta(days=1)
        ),
        "status[failed,timed_out], ended_at desc": runs_page(
            statuses=["failed", "timed_out"], order_by="ended_at"
        ),
    }
    for order_by in ("created_at", "updated_at", "ended_at", "status"):
        for direction in ("desc", "asc"):
            named[f"all, {order_by} {direction}"] = runs_page(
                order_by=order_by, direction=direction
            )
    named["sessions: all, last_activity_at desc"] = sessions_page()
    named["sessions: status[waiting_for_input], last_activity_at desc"] = sessions_page(
        statuses=["waiting_for_input"]
    )
    named["sessions: agent, created_at desc"] = sessions_page(agent="coder", order_by="created_at")
    return named


async def probe_values(factory: Factory) -> dict[str, Any]:
    """Cursors and IDs the scenarios start from, found through the store itself."""
    filtered: dict[str, Any] = {"statuses": ["completed", "failed"], "agent": "approval-demo"}
    async with factory() as session:
        first, cursor = await runs.list_runs(session, PROJECT, limit=50, **filtered)
        _, deep = await runs.list_runs(session, PROJECT, limit=10_000, **filtered)
    return {
        "newest": first[0].created_at,
        "session_id": first[0].session_id,
        "filtered_cursor": cursor,
        "deep_cursor": deep,
    }


def grid_filters(probe: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every filter of ``list_runs``, at selectivities from one session to everything."""
    newest = probe["newest"]
    recent_day = newest - timedelta(days=1)
    oldest_day = newest - timedelta(days=30)
    return {
        "none": {},
        "session_id": {"session_id": probe["session_id"]},
        "status[completed,failed]": {"statuses": ["completed", "failed"]},
        "status[waiting_for_input]": {"statuses": ["waiting_for_input"]},
        "status[running,queued]": {"statuses": ["running", "queued"]},
        "agent (5%)": {"agent": "triager"},
        "trigger_id (2%)": {"trigger_id": "nightly"},
        "status[completed,failed]+agent": {
            "statuses": ["completed", "failed"],
            "agent": "approval-demo",
        },
        "created: last day": {"created_after": recent_day},
        "created: oldest day": {
            "created_after": oldest_day,
            "created_before": oldest_day + timedelta(days=1),
        },
        "created: before the oldest 3 days": {"created_before": oldest_day + timedelta(days=3)},
        "created: last 7 days": {"created_after": newest - timedelta(days=7)},
    }


async def grid(factory: Factory, engine: AsyncEngine, probe: dict[str, Any], calls: int) -> Any:
    """Every filter x order x direction, first and second page: p50 of the call, and the
    time PostgreSQL spent executing its statements (EXPLAIN ANALYZE)."""
    recorder = PlanRecorder(engine)
    cells = []
    for (label, filters), order_by, direction in itertools.product(
        grid_filters(probe).items(),
        ("created_at", "updated_at", "ended_at", "status"),
        ("desc", "asc"),
    ):
        cursor = None
        for page_no in (1, 2):
            arguments = {**filters, "order_by": order_by, "direction": direction, "cursor": cursor}

            async def call(arguments: dict[str, Any] = arguments) -> Any:
                async with factory() as session:
                    return await runs.list_runs(session, PROJECT, limit=50, **arguments)

            recorder.statements.clear()
            page, next_cursor = await call()
            plans = await recorder.plans(engine)
            samples = await timed(call, calls)
            cells.append(
                {
                    "filter": label,
                    "order": f"{order_by} {direction}",
                    "page": page_no,
                    "rows": len(page),
                    "p50_ms": round(statistics.median(samples), 2),
                    "db_ms": round(sum(p["execution_ms"] for p in plans), 3),
                    "scans": [scan for p in plans for scan in p["scans"]],
                    "sort": any(p["sort"] for p in plans),
                }
            )
            if next_cursor is None:
                break
            cursor = next_cursor
    worst = sorted(cells, key=lambda cell: cell["db_ms"], reverse=True)
    return {
        "cells": len(cells),
        "p50_ms_median": round(statistics.median(c["p50_ms"] for c in cells), 2),
        "p50_ms_max": max(c["p50_ms"] for c in cells),
        "db_ms_median": round(statistics.median(c["db_ms"] for c in cells), 3),
        "db_ms_max": worst[0]["db_ms"],
        "worst": worst[:8],
        "all": cells,
    }


async def measure(url: str, calls: int, grid_calls: int) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        factory = session_factory(engine)
        probe = await probe_values(factory)
        named = scenarios(factory, probe)
        recorder = PlanRecorder(engine)
        results: dict[str, Any] = {}
        for name, call in named.items():
            await call()
            plans = await recorder.plans(engine)
            samples = await timed(call, calls)
            page = await call()
            results[name] = {
                "p50_ms": round(statistics.median(samples), 2),
                "p95_ms": round(percentile(samples, 0.95), 2),
                "rows": len(page[0]),
                "has_next": page[1] is not None,
                "plans": plans,
            }
            recorder.statements.clear()
        return {"scenarios": results, "grid": await grid(factory, engine, probe, grid_calls)}
    finally:
        await engine.dispose()


async def main(
    runs: int, calls: int, grid_calls: int, pg_url: str, keep: bool, reuse: str | None
) -> dict[str, Any]:
    admin_url = make_url(pg_url).set(drivername="postgresql")
    name = reuse or f"tether_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
    try:
        version = await admin.fetchval("SHOW server_version")
        if reuse is None:
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db_url = admin_url.set(database=name)
    loaded: dict[str, Any] = {"reused": name} if reuse else {}
    try:
        if reuse is None:
            await migrate(db_url.set(drivername="postgresql+asyncpg"))
            loaded = await load(db_url.render_as_string(hide_password=False), runs)
        measured = await measure(
            db_url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
            calls,
            grid_calls,
        )
    finally:
        if not keep and reuse is None:
            admin = await asyncpg.connect(admin_url.render_as_string(hide_password=False))
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await admin.close()
    return {
        "when": datetime.now(UTC).isoformat(),
        "postgres": version,
        "database_kept": name if keep or reuse else None,
        "calls_per_scenario": calls,
        "calls_per_grid_cell": grid_calls,
        "limit": 50,
        **loaded,
        **measured,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--grid-calls", type=int, default=20)
    parser.add_argument("--pg-url", default=os.environ.get("TETHER_TEST_PG_URL", DEFAULT_PG_URL))
    parser.add_argument(
        "--keep", action="store_true", help="keep the database (to EXPLAIN by hand); drop it later"
    )
    parser.add_argument("--reuse", metavar="DATABASE", help="measure a kept database again")
    args = parser.parse_args()
    outcome = asyncio.run(
        main(args.runs, args.calls, args.grid_calls, args.pg_url, args.keep, args.reuse)
    )
    # The grid's every cell goes to the file; the terminal gets its summary.
    shown = {**outcome, "grid": {k: v for k, v in outcome["grid"].items() if k != "all"}}
    print(json.dumps(shown, indent=2, default=str))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / f"list_runs-{int(time.time())}.json").write_text(
        json.dumps(outcome, indent=2, default=str)
    )
