"""Store queries of sessions that behave, on real SQLite and real PostgreSQL.

Idempotency lookups, the session columns kept by ``upsert_run`` (with queued runs), the run
listing in every filter and order (keyset pages that neither skip nor repeat, also while runs
arrive), and the session listing.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from store import run_listing, runs, sessions
from store.db import alembic_config, create_engine
from store.keyset import InvalidCursor
from tests.fixtures_db import DatabaseKind, migrated_database
from tests.test_store import T0, Db, make_run, read
from workflows.types import TERMINAL_STATUSES, RunState, RunStatus

S = RunStatus


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def put(db: Db, state: RunState, **kwargs: Any) -> None:
    async with db[1].begin() as session:
        await runs.upsert_run(session, state, **kwargs)


async def page_all(db: Db, fn: Any, limit: int, **kwargs: Any) -> list[str]:
    """Every page of a listing, as IDs; fails on a repeated ID."""
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await read(db, fn, "default", limit=limit, cursor=cursor, **kwargs)
        assert len(page) <= limit
        seen += [getattr(item, "run_id", None) or item.session_id for item in page]
        if cursor is None:
            break
        assert len(page) == limit  # only the last page is short
    assert len(seen) == len(set(seen)), f"repeated: {seen}"
    return seen


# Idempotency.


async def test_find_run_by_idempotency_key(db: Db) -> None:
    await put(db, make_run("run_1", idempotency_key="k1"), request_hash="h1")
    await put(db, make_run("run_2", idempotency_key="k2", created_at=at(1)))
    await put(db, make_run("run_3", idempotency_key="k1", session_id="s2"), request_hash="h3")
    await put(db, make_run("run_4", idempotency_key="k1", project_id="other"), request_hash="x")

    found = await read(db, runs.find_run_by_idempotency_key, "default", "s1", "k1")
    assert found is not None
    assert (found.run.run_id, found.run.idempotency_key, found.request_hash) == (
        "run_1",
        "k1",
        "h1",
    )
    assert await read(db, runs.find_run_by_idempotency_key, "default", "s1", "k2") == runs.KeyedRun(
        run=await read(db, runs.get_run, "default", "run_2"), request_hash=None
    )
    # Keys are per session and per project.
    other_session = await read(db, runs.find_run_by_idempotency_key, "default", "s2", "k1")
    assert other_session.run.run_id == "run_3"
    assert await read(db, runs.find_run_by_idempotency_key, "default", "s1", "k9") is None
    assert await read(db, runs.find_run_by_idempotency_key, "nobody", "s1", "k1") is None


async def test_request_hash_is_set_once(db: Db) -> None:
    await put(db, make_run("run_1", idempotency_key="k"))  # projected before the hash is known
    await put(db, make_run("run_1", idempotency_key="k", version=2), request_hash="h1")
    # Later projections without it, or with another one, keep the fingerprint of the request.
    await put(db, make_run("run_1", idempotency_key="k", status=S.RUNNING, version=3))
    await put(db, make_run("run_1", idempotency_key="k", version=4), request_hash="h2")
    found = await read(db, runs.find_run_by_idempotency_key, "default", "s1", "k")
    assert (found.run.version, found.request_hash) == (4, "h1")


# Session columns.


async def test_session_status_active_run_and_queue(db: Db) -> None:
    async def summary() -> sessions.SessionSummary:
        return await read(db, sessions.get_session, "default", "s1")

    async def active() -> str | None:
        run = await read(db, runs.get_active_run, "default", "s1")
        return None if run is None else run.run_id

    # Two runs enqueued behind a running one: the running one stays active, the others wait
    # in creation order, whatever order their projections arrive in.
    await put(db, make_run("run_c", created_at=at(2)))
    await put(db, make_run("run_a", status=S.RUNNING, created_at=at(0), last_seq=3, version=2))
    await put(db, make_run("run_b", created_at=at(1)))
    s = await summary()
    assert (s.status, s.active_run_id, s.queued_run_ids) == ("active", "run_a", ["run_b", "run_c"])
    assert (s.run_count, s.last_run_id, s.cursor) == (3, "run_c", 3)
    assert await active() == "run_a"

    await put(db, make_run("run_a", status=S.WAITING_FOR_INPUT, created_at=at(0), version=3))
    assert (await summary()).status == "waiting_for_input"

    # The active run ends: the oldest queued one is next, and is the active run.
    await put(db, make_run("run_a", status=S.COMPLETED, created_at=at(0), version=4))
    s = await summary()
    assert (s.status, s.active_run_id, s.queued_run_ids) == ("active", "run_b", ["run_c"])
    assert await active() == "run_b"

    # A queued run is cancelled: it leaves the queue.
    await put(db, make_run("run_c", status=S.CANCELLED, created_at=at(2), version=2))
    await put(db, make_run("run_b", status=S.RUNNING, created_at=at(1), last_seq=5, version=2))
    s = await summary()
    assert (s.status, s.active_run_id, s.queued_run_ids, s.cursor) == ("active", "run_b", [], 5)

    await put(db, make_run("run_b", status=S.FAILED, created_at=at(1), last_seq=6, version=3))
    s = await summary()
    assert (s.status, s.active_run_id, s.queued_run_ids) == ("idle", None, [])
    assert (s.run_count, s.last_run_id, s.cursor) == (3, "run_c", 0)
    assert await active() is None
    assert await read(db, runs.get_active_run, "default", "nope") is None
    assert await read(db, runs.get_active_run, "other", "s1") is None


async def test_interrupt_hands_the_session_to_the_new_run(db: Db) -> None:
    await put(db, make_run("run_a", status=S.RUNNING, version=2))
    await put(db, make_run("run_b", created_at=at(1)))  # interrupt: queued until a is cancelled
    assert (await read(db, sessions.get_session, "default", "s1")).active_run_id == "run_a"
    cancelled = make_run("run_a", status=S.CANCELLED, status_reason="interrupted", version=3)
    await put(db, cancelled)
    await put(db, make_run("run_b", status=S.DISPATCHING, created_at=at(1), version=2))
    s = await read(db, sessions.get_session, "default", "s1")
    assert (s.status, s.active_run_id, s.queued_run_ids) == ("active", "run_b", [])


async def test_concurrent_writers_of_one_session_keep_its_counts(db: Db) -> None:
    # Each write derives the session from its runs; a lost update would drop some runs.
    made = [make_run(f"run_{i:02d}", created_at=at(i)) for i in range(12)]
    await asyncio.gather(*(put(db, run) for run in made))
    s = await read(db, sessions.get_session, "default", "s1")
    assert (s.run_count, s.last_run_id, s.active_run_id) == (12, "run_11", "run_00")
    assert s.queued_run_ids == [f"run_{i:02d}" for i in range(1, 12)]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_migration_backfills_session_columns(kind: DatabaseKind, tmp_path: Path) -> None:
    # Rows written under 0002 (no session columns yet), then the upgrade derives the columns.
    async with migrated_database(kind, tmp_path) as url:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_alembic, url, "downgrade", "0002")
                await _fill_0002(conn)
            async with engine.begin() as conn:
                await conn.run_sync(_alembic, url, "upgrade", "head")
            async with engine.connect() as conn:
                sql = "SELECT session_id, status, active_run_id, run_count FROM sessions"
                rows = (await conn.execute(text(sql + " ORDER BY session_id"))).all()
        finally:
            await engine.dispose()
    assert [tuple(row) for row in rows] == [
        ("s1", "waiting_for_input", "r2", 3),
        ("s2", "active", "r4", 2),
        ("s3", "idle", None, 1),
    ]


def _alembic(connection: Any, url: str, action: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    getattr(command, action)(config, revision)


async def _fill_0002(conn: AsyncConnection) -> None:
    for sid in ("s1", "s2", "s3"):
        await conn.execute(
            text(
                "INSERT INTO sessions (session_id, project_id, agent, created_at, updated_at,"
                " metadata) VALUES (:s, 'default', 'echo', :t, :t, '{}')"
            ),
            {"s": sid, "t": T0},
        )
    for run_id, sid, status in (
        ("r1", "s1", "completed"),
        ("r2", "s1", "waiting_for_input"),
        ("r3", "s1", "queued"),
        ("r4", "s2", "queued"),
        ("r5", "s2", "queued"),
        ("r6", "s3", "failed"),
    ):
        await conn.execute(
            text(
                "INSERT INTO runs (run_id, session_id, project_id, agent, status, metadata,"
                " created_at, updated_at, last_seq, events, steps, usage, attempts, version)"
                " VALUES (:r, :s, 'default', 'echo', :st, '{}', :t, :t, 0, 0, 0, '{}', '{}', 1)"
            ),
            {"r": run_id, "s": sid, "st": status, "t": at(int(run_id[1:]))},
        )


# Run listing.

TERMINAL = {status.value for status in TERMINAL_STATUSES}
STATUS_CYCLE = [S.COMPLETED, S.FAILED, S.RUNNING, S.QUEUED, S.WAITING_FOR_INPUT, S.CANCELLED]
ORDERS = ["created_at", "updated_at", "ended_at", "status"]


def sample_run(i: int, *, base: float = 0, project_id: str = "default") -> RunState:
    """Run ``i`` of a varied set: ties in every order key, NULL ``ended_at``, run IDs that do
    not follow creation order."""
    status = STATUS_CYCLE[i % len(STATUS_CYCLE)]
    created = at(base + i // 3)
    return make_run(
        f"run_{(i * 17) % 101:03d}_{int(base)}",
        session_id=f"s{i % 5}",
        project_id=project_id,
        status=status,
        created_at=created,
        updated_at=created + timedelta(seconds=(i * 7) % 5),
        ended_at=at(base + 100 + (i % 4) * 10) if status.value in TERMINAL else None,
        agent=["echo", "approval", "coder"][i % 3],
        trigger_id=[None, "hourly", None, "nightly"][i % 4],
    )


def sort_key(order_by: str) -> Callable[[RunState], tuple[Any, ...]]:
    """The order ``list_runs`` promises, ascending; desc is its exact reverse."""
    if order_by == "ended_at":
        # NULL sorts before every time.
        return lambda r: (r.ended_at is not None, r.ended_at or T0, r.run_id)
    if order_by == "status":
        return lambda r: (r.status.value, r.created_at, r.run_id)
    return lambda r: (getattr(r, order_by), r.run_id)


def expected(made: list[RunState], order_by: str, direction: str, **filters: Any) -> list[str]:
    def keep(run: RunState) -> bool:
        return (
            run.project_id == "default"
            and filters.get("session_id", run.session_id) == run.session_id
            and run.status.value in filters.get("statuses", [run.status.value])
            and filters.get("agent", run.agent) == run.agent
            and filters.get("trigger_id", run.trigger_id) == run.trigger_id
            and run.created_at >= filters.get("created_after", run.created_at)
            and run.created_at < filters.get("created_before", run.created_at + timedelta(1))
        )

    ordered = sorted(filter(keep, made), key=sort_key(order_by))
    if direction == "desc":
        ordered.reverse()
    return [run.run_id for run in ordered]


FILTERS: list[dict[str, Any]] = [
    {},
    {"session_id": "s1"},
    {"statuses": ["completed", "failed"]},
    {"statuses": ["running"]},
    {"agent": "echo"},
    {"trigger_id": "nightly"},
    {"created_after": at(3), "created_before": at(9)},
    {"created_after": at(10)},
    {"created_before": at(4)},
    {"statuses": ["completed", "failed", "cancelled"], "agent": "approval"},
    {"session_id": "s2", "statuses": ["queued"], "trigger_id": "hourly"},
]


@pytest.mark.parametrize("order_by", ORDERS)
async def test_list_runs_every_filter_and_order_pages_exactly(db: Db, order_by: str) -> None:
    made = [sample_run(i) for i in range(40)]
    made += [sample_run(i, project_id="other") for i in range(3)]
    for run in made:
        await put(db, run)
    assert any(run.ended_at is None for run in made)

    for direction, filters, limit in itertools.product(["asc", "desc"], FILTERS, [4, 50]):
        want = expected(made, order_by, direction, **filters)
        got = await page_all(
            db, runs.list_runs, limit, order_by=order_by, direction=direction, **filters
        )
        assert got == want, (direction, filters, limit)


@pytest.mark.parametrize("range_first", [True, False])
async def test_list_runs_created_range_either_way_round(
    db: Db, range_first: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A created range with a time order is read range-first or by walking the order index,
    # whichever the probe finds cheaper; both must give the same pages.
    async def forced(*_: Any) -> bool:
        return range_first

    monkeypatch.setattr(run_listing, "_range_first", forced)
    made = [sample_run(i) for i in range(30)]
    for run in made:
        await put(db, run)
    ranges = [f for f in FILTERS if "created_after" in f or "created_before" in f]
    ranges.append({"created_after": at(2), "agent": "echo", "statuses": ["completed"]})
    for order_by, direction, filters in itertools.product(
        ["updated_at", "ended_at"], ["asc", "desc"], ranges
    ):
        want = expected(made, order_by, direction, **filters)
        got = await page_all(
            db, runs.list_runs, 3, order_by=order_by, direction=direction, **filters
        )
        assert got == want, (order_by, direction, filters)


async def test_range_first_probe_picks_the_cheaper_way(db: Db) -> None:
    for i in range(30):
        await put(db, make_run(f"run_{i:02d}", created_at=at(i)))

    async def probe(after: float | None, before: float | None, direction: str) -> bool:
        async with db[1]() as session:
            return await run_listing._range_first(
                session,
                "default",
                None if after is None else at(after),
                None if before is None else at(before),
                direction,  # type: ignore[arg-type]
            )

    assert await probe(25, None, "desc") is False  # the walk starts inside the range
    assert await probe(None, 5, "asc") is False
    assert await probe(0, 5, "desc") is True  # 5 in range, 25 newer ones to walk past
    assert await probe(20, None, "asc") is True  # 10 in range, 20 older ones
    assert await probe(0, 25, "desc") is False  # 25 in range, 5 to walk past


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("order_by", ORDERS)
async def test_list_runs_pages_stay_stable_while_runs_arrive(
    db: Db, order_by: str, direction: str
) -> None:
    initial = [sample_run(i) for i in range(20)]
    for run in initial:
        await put(db, run)
    arrived: list[RunState] = []
    seen: list[str] = []
    cursor = None
    while True:
        page, cursor = await read(
            db,
            runs.list_runs,
            "default",
            order_by=order_by,
            direction=direction,
            limit=3,
            cursor=cursor,
        )
        seen += [run.run_id for run in page]
        if cursor is None:
            break
        # New runs between two fetches: created, updated and (for some) ended after everything
        # so far, and some not ended at all (NULL ended_at).
        for _ in range(2):
            new = sample_run(len(arrived), base=1000 + 10 * len(arrived))
            arrived.append(new)
            await put(db, new)

    assert len(seen) == len(set(seen)), "a run was repeated"
    # No run that was there from the start is skipped, and what was seen is in order.
    everything = expected(initial + arrived, order_by, direction)
    assert set(run.run_id for run in initial) <= set(seen)
    assert seen == [run_id for run_id in everything if run_id in set(seen)]
    if order_by == "created_at":
        # Newer runs are behind a desc cursor and ahead of an asc one: exact either way.
        want = expected(initial, order_by, direction)
        if direction == "asc":
            want += [run.run_id for run in arrived]
        assert seen == want


async def test_list_runs_by_created_at_is_exact_while_runs_change(db: Db) -> None:
    made = [sample_run(i) for i in range(20)]
    for run in made:
        await put(db, run)
    seen: list[str] = []
    cursor = None
    bump = 0
    while True:
        page, cursor = await read(db, runs.list_runs, "default", limit=4, cursor=cursor)
        seen += [run.run_id for run in page]
        if cursor is None:
            break
        # Runs progress between fetches (updated_at, status, ended_at move); created_at never.
        for run in made[bump : bump + 5]:
            moved = run.model_copy(
                update={
                    "status": S.COMPLETED,
                    "updated_at": at(5000 + bump),
                    "ended_at": at(5000 + bump),
                    "version": run.version + 1,
                }
            )
            await put(db, moved)
        bump += 5
    assert seen == expected(made, "created_at", "desc")


async def test_list_runs_created_range_is_half_open(db: Db) -> None:
    for i in range(6):
        await put(db, make_run(f"run_{i}", created_at=at(i)))
    window, _ = await read(db, runs.list_runs, "default", created_after=at(1), created_before=at(4))
    assert [run.run_id for run in window] == ["run_3", "run_2", "run_1"]
    after, _ = await read(db, runs.list_runs, "default", created_after=at(4), direction="asc")
    assert [run.run_id for run in after] == ["run_4", "run_5"]


async def test_list_runs_ended_at_nulls_sort_before_every_time(db: Db) -> None:
    await put(db, make_run("run_a", status=S.COMPLETED, ended_at=at(5)))
    await put(db, make_run("run_b", status=S.RUNNING))
    await put(db, make_run("run_c", status=S.FAILED, ended_at=at(1)))
    await put(db, make_run("run_d", status=S.QUEUED))

    async def ids(direction: str, limit: int) -> list[str]:
        return await page_all(db, runs.list_runs, limit, order_by="ended_at", direction=direction)

    for limit in (1, 2, 3, 10):  # the page boundary falls anywhere, also between NULLs
        assert await ids("desc", limit) == ["run_a", "run_c", "run_d", "run_b"]
        assert await ids("asc", limit) == ["run_b", "run_d", "run_c", "run_a"]


def forge(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_cursors_only_work_for_the_order_they_were_made_for(db: Db) -> None:
    for i in range(3):
        await put(db, make_run(f"run_{i}", created_at=at(i)))
    _, cursor = await read(db, runs.list_runs, "default", limit=1)
    assert cursor is not None
    for order_by, direction in itertools.product(ORDERS, ["asc", "desc"]):
        if (order_by, direction) == ("created_at", "desc"):
            continue
        with pytest.raises(InvalidCursor):
            await read(
                db,
                runs.list_runs,
                "default",
                order_by=order_by,
                direction=direction,
                cursor=cursor,
            )
    _, session_cursor = await read(db, sessions.list_sessions, "default", limit=1)
    sessions_cursor = forge({"l": "sessions", "o": "created_at", "d": "desc", "k": []})
    for bad in (
        session_cursor or sessions_cursor,  # another listing's cursor
        sessions_cursor,
        forge({"l": "runs", "o": "created_at", "d": "desc", "k": ["2025-03-01T12:00:00"]}),
        forge({"l": "runs", "o": "created_at", "d": "desc", "k": [1, "run_1"]}),
        # A naive time: nothing this store writes.
        forge({"l": "runs", "o": "created_at", "d": "desc", "k": ["2025-03-01T12:00:00", "r"]}),
        forge({"l": "runs", "o": "created_at", "d": "desc", "k": [None, "run_1"]}),
        forge(["runs"]),  # type: ignore[arg-type]
        "",
        "!!!",
    ):
        with pytest.raises(InvalidCursor):
            await read(db, runs.list_runs, "default", cursor=bad)
    with pytest.raises(ValueError, match="order_by"):
        await read(db, runs.list_runs, "default", order_by="input")
    with pytest.raises(ValueError, match="direction"):
        await read(db, runs.list_runs, "default", direction="up")


# Session listing.


async def test_list_sessions_filters_orders_and_pages(db: Db) -> None:
    # Session sN: created at N; its last activity runs the other way round; statuses vary.
    statuses = [S.RUNNING, S.COMPLETED, S.WAITING_FOR_INPUT, S.QUEUED, S.FAILED, S.COMPLETED]
    for n in range(12):
        status = statuses[n % len(statuses)]
        await put(
            db,
            make_run(
                f"run_{n:02d}",
                session_id=f"s{n:02d}",
                status=status,
                created_at=at(n),
                updated_at=at(100 - n // 2),  # pairs share a last activity: a tie to break
                agent="echo" if n % 3 else "coder",
            ),
        )
    await put(db, make_run("run_x", session_id="sx", project_id="other"))
    listed, next_cursor = await read(db, sessions.list_sessions, "default", limit=100)
    by_id = {s.session_id: s for s in listed}
    assert len(by_id) == 12 and next_cursor is None

    def ordered(key: str, direction: str, keep: Callable[[Any], bool] = lambda s: True) -> list:
        chosen = sorted(
            (s for s in by_id.values() if keep(s)), key=lambda s: (getattr(s, key), s.session_id)
        )
        return [s.session_id for s in (reversed(chosen) if direction == "desc" else chosen)]

    for order_by, direction, limit in itertools.product(
        ["last_activity_at", "created_at"], ["asc", "desc"], [1, 5, 50]
    ):
        got = await page_all(
            db, sessions.list_sessions, limit, order_by=order_by, direction=direction
        )
        assert got == ordered(order_by, direction), (order_by, direction, limit)
        busy = await page_all(
            db,
            sessions.list_sessions,
            limit,
            order_by=order_by,
            direction=direction,
            statuses=["active", "waiting_for_input"],
            agent="echo",
        )
        assert busy == ordered(
            order_by, direction, lambda s: s.status != "idle" and s.agent == "echo"
        )
    assert {s.status for s in by_id.values()} == {"active", "waiting_for_input", "idle"}
    assert by_id["s02"].status == "waiting_for_input" and by_id["s03"].status == "active"
    assert by_id["s03"].active_run_id == "run_03" and by_id["s03"].queued_run_ids == []
    waiting, _ = await read(db, sessions.list_sessions, "default", statuses=["waiting_for_input"])
    assert [s.session_id for s in waiting] == ["s02", "s08"]

    _, cursor = await read(db, sessions.list_sessions, "default", limit=2)
    with pytest.raises(InvalidCursor):
        await read(db, sessions.list_sessions, "default", order_by="created_at", cursor=cursor)
    with pytest.raises(InvalidCursor):
        await read(db, runs.list_runs, "default", cursor=cursor)


async def test_list_sessions_agrees_with_get_session(db: Db) -> None:
    await put(db, make_run("run_a", status=S.RUNNING, last_seq=4, version=2))
    await put(db, make_run("run_b", created_at=at(1)))
    listed, _ = await read(db, sessions.list_sessions, "default")
    assert listed == [await read(db, sessions.get_session, "default", "s1")]
    assert listed[0].queued_run_ids == ["run_b"] and listed[0].cursor == 4
