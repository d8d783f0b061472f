"""The store on real SQLite and real PostgreSQL: migrations, idempotent writes, scoped reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from runner.protocol import AgentInfo, AgentList, EventType, InteractionOption, RunEvent
from store import agents, interactions, runs, sessions, transcript
from store.db import alembic_config, create_engine, migrate, normalize_url
from store.keyset import InvalidCursor
from store.models import Base, Interaction, RunRow, RunStatusHistory, SessionRow, TranscriptEvent
from workflows.types import (
    InteractionRecord,
    PendingInteraction,
    RunResult,
    RunState,
    RunStatus,
    StatusTransition,
)

Db = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]

# The newest migration: what a migrated store is at.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def make_run(
    run_id: str,
    *,
    session_id: str = "s1",
    project_id: str = "default",
    status: RunStatus = RunStatus.QUEUED,
    created_at: datetime = T0,
    version: int = 1,
    **fields: Any,
) -> RunState:
    return RunState(
        run_id=run_id,
        session_id=session_id,
        project_id=project_id,
        agent=fields.pop("agent", "echo"),
        status=status,
        created_at=created_at,
        updated_at=fields.pop("updated_at", created_at),
        version=version,
        **fields,
    )


def make_interaction(
    interaction_id: str, status: str = "pending", **fields: Any
) -> InteractionRecord:
    return InteractionRecord(
        interaction_id=interaction_id,
        run_id=fields.pop("run_id", "run_1"),
        session_id="s1",
        project_id=fields.pop("project_id", "default"),
        kind="permission",
        prompt="Run `rm -rf build`?",
        options=[
            InteractionOption(option_id="allow", name="Allow"),
            InteractionOption(option_id="deny", name="Deny"),
        ],
        status=status,  # type: ignore[arg-type]
        requested_at=fields.pop("requested_at", T0),
        **fields,
    )


async def write(db: Db, fn: Any, *args: Any) -> Any:
    async with db[1].begin() as session:
        return await fn(session, *args)


async def read(db: Db, fn: Any, *args: Any, **kwargs: Any) -> Any:
    async with db[1]() as session:
        return await fn(session, *args, **kwargs)


def test_normalize_url() -> None:
    assert normalize_url("postgres://u:p@h:5/db") == "postgresql+asyncpg://u:p@h:5/db"
    assert normalize_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert normalize_url("sqlite:///.tether/t.db") == "sqlite+aiosqlite:///.tether/t.db"
    assert normalize_url("sqlite+aiosqlite:////abs/t.db") == "sqlite+aiosqlite:////abs/t.db"


# Migrations.


async def test_migration_creates_every_table_and_is_idempotent(database_url: str) -> None:
    await migrate(database_url)  # the fixture already migrated once
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            version = await conn.scalar(text("SELECT version_num FROM alembic_version"))
            projects = (await conn.execute(text("SELECT project_id FROM projects"))).all()
    finally:
        await engine.dispose()
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    assert version == HEAD
    assert projects == [("default",)]


async def test_migration_matches_models(db: Db) -> None:
    def diff(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)

    async with db[0].connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_migrate_from_any_directory_creates_the_sqlite_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # far from the repository and its migrations
    await migrate("sqlite:///data/nested/tether.db")
    engine = create_engine("sqlite:///data/nested/tether.db")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
    finally:
        await engine.dispose()
    assert (tmp_path / "data" / "nested" / "tether.db").is_file()


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/nested/dir/t.db")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA foreign_keys")) == 1
            assert await conn.scalar(text("PRAGMA synchronous")) == 1  # NORMAL
    finally:
        await engine.dispose()


# Writes.


async def test_upsert_run_insert_update_and_stale_write_ignored(db: Db) -> None:
    await write(db, runs.upsert_run, make_run("run_1", input={"prompt": "hi"}, version=1))
    run = await read(db, runs.get_run, "default", "run_1")
    assert run.status == RunStatus.QUEUED
    assert run.input == {"prompt": "hi"}
    assert run.result is None and run.error is None

    done = make_run(
        "run_1",
        status=RunStatus.COMPLETED,
        version=3,
        input={"prompt": "hi"},
        started_at=T0 + timedelta(seconds=1),
        ended_at=T0 + timedelta(seconds=3),
        updated_at=T0 + timedelta(seconds=3),
        result=RunResult(output="hello", stop_reason="end_turn"),
        usage={"input_tokens": 10},
        attempts={"dispatch": 1},
        metadata={"k": "v"},
        last_seq=7,
    )
    await write(db, runs.upsert_run, done)
    # A retried activity with an older projection must not move the run back.
    await write(db, runs.upsert_run, make_run("run_1", status=RunStatus.RUNNING, version=2))
    run = await read(db, runs.get_run, "default", "run_1")
    assert run == done
    assert run.duration_ms == 2000

    await write(db, runs.upsert_run, done)  # the same write again changes nothing
    assert await read(db, runs.get_run, "default", "run_1") == done


def test_records_map_to_their_columns_by_name() -> None:
    # Rows are derived from the records by column name (``store.columns.RecordColumns``): a
    # field without a column of its name would silently not be stored. Mapped by hand in
    # ``store.runs``: the pending interaction (its ID), the agent session (on the session
    # row) and the request fingerprint.
    fields, columns = set(RunState.model_fields), set(RunRow.__table__.c.keys())
    assert fields - columns == {"pending_interaction", "agent_session_id"}
    assert columns - fields == {"pending_interaction_id", "request_hash"}
    assert set(InteractionRecord.model_fields) == set(Interaction.__table__.c.keys())


async def test_status_history_written_once(db: Db) -> None:
    running = make_run("run_1", status=RunStatus.RUNNING, version=2)
    t1 = StatusTransition(seq=1, status=RunStatus.QUEUED, at=T0)
    t2 = StatusTransition(seq=2, status=RunStatus.RUNNING, reason="dispatched", at=T0)
    await write(db, runs.upsert_run, make_run("run_1", version=1), t1)
    await write(db, runs.upsert_run, running, t2)
    await write(db, runs.upsert_run, running, t2)
    await write(db, runs.upsert_run, running, t2.model_copy(update={"reason": "retry"}))
    assert await read(db, runs.run_history, "default", "run_1") == [t1, t2]
    async with db[1]() as session:
        assert await session.scalar(select(func.count()).select_from(RunStatusHistory)) == 2


def event(seq: int, type_: EventType = EventType.MESSAGE) -> RunEvent:
    return RunEvent(seq=seq, type=type_, ts=T0 + timedelta(seconds=seq), data={"n": seq})


async def test_insert_events_is_idempotent(db: Db) -> None:
    first = [event(i) for i in (1, 2, 3)]
    assert await write(db, transcript.insert_events, "default", "run_1", first) == 3
    assert await write(db, transcript.insert_events, "default", "run_1", []) == 0
    # A retried batch overlapping what is stored adds only the new events.
    overlap = [event(i) for i in range(2, 7)]
    assert await write(db, transcript.insert_events, "default", "run_1", overlap) == 3
    assert await write(db, transcript.insert_events, "default", "run_1", overlap) == 0

    events = await read(db, transcript.list_events, "default", "run_1")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0] == event(1)
    page = await read(db, transcript.list_events, "default", "run_1", after=2, limit=3)
    assert [e.seq for e in page] == [3, 4, 5]
    assert await read(db, transcript.list_events, "other", "run_1") == []
    async with db[1]() as session:
        assert await session.scalar(select(func.count()).select_from(TranscriptEvent)) == 6


async def test_interaction_upsert_never_moves_back_to_pending(db: Db) -> None:
    pending = make_interaction("int_1", expires_at=T0 + timedelta(hours=1))
    await write(db, interactions.upsert_interaction, pending)
    assert await read(db, interactions.get_interaction, "default", "int_1") == pending

    resolved = pending.model_copy(
        update={
            "status": "resolved",
            "response": {"option_id": "allow"},
            "responder": "ana",
            "resolved_at": T0 + timedelta(minutes=1),
        }
    )
    await write(db, interactions.upsert_interaction, resolved)
    await write(db, interactions.upsert_interaction, pending)  # a late retry of "record pending"
    assert await read(db, interactions.get_interaction, "default", "int_1") == resolved

    # A settled interaction can still be rewritten settled, e.g. to record a losing answer.
    later = resolved.model_copy(update={"ignored_responses": [{"option_id": "deny"}]})
    await write(db, interactions.upsert_interaction, later)
    assert await read(db, interactions.get_interaction, "default", "int_1") == later


async def test_list_interactions_filters_newest_first(db: Db) -> None:
    for i, status in enumerate(["pending", "resolved", "pending", "expired"]):
        rec = make_interaction(
            f"int_{i}",
            status,
            run_id=f"run_{i % 2}",
            requested_at=T0 + timedelta(minutes=i),
        )
        await write(db, interactions.upsert_interaction, rec)
    await write(db, interactions.upsert_interaction, make_interaction("int_x", project_id="other"))

    def ids(records: list[InteractionRecord]) -> list[str]:
        return [r.interaction_id for r in records]

    assert ids(await read(db, interactions.list_interactions, "default")) == [
        "int_3",
        "int_2",
        "int_1",
        "int_0",
    ]
    pending = await read(db, interactions.list_interactions, "default", status="pending")
    assert ids(pending) == ["int_2", "int_0"]
    assert ids(await read(db, interactions.list_interactions, "default", run_id="run_1")) == [
        "int_3",
        "int_1",
    ]
    assert ids(await read(db, interactions.list_interactions, "default", limit=1)) == ["int_3"]
    assert await read(db, interactions.get_interaction, "default", "int_x") is None


async def test_get_run_shows_the_pending_interaction(db: Db) -> None:
    pending = PendingInteraction(
        interaction_id="int_1",
        kind="permission",
        prompt="Allow?",
        options=[InteractionOption(option_id="allow", name="Allow", kind="allow_once")],
        tool_call={"title": "write file"},
        requested_at=T0,
        expires_at=T0 + timedelta(hours=24),
    )
    waiting = make_run(
        "run_1", status=RunStatus.WAITING_FOR_INPUT, pending_interaction=pending, paused_at=T0
    )
    # upsert_run alone records the interaction, so the run never points at a missing row.
    await write(db, runs.upsert_run, waiting)
    run = await read(db, runs.get_run, "default", "run_1")
    assert run.pending_interaction == pending
    interaction = await read(db, interactions.get_interaction, "default", "int_1")
    assert interaction.status == "pending" and interaction.run_id == "run_1"
    listed, _ = await read(db, runs.list_runs, "default")
    assert listed[0].pending_interaction == pending


# Reads.


async def test_list_runs_filters_and_pages_without_gaps(db: Db) -> None:
    expected = []
    for i in range(25):
        # Pairs share a created_at, so the run_id tie-break is exercised too.
        state = make_run(
            f"run_{i:02d}",
            session_id="s1" if i % 2 else "s2",
            status=RunStatus.COMPLETED if i % 3 else RunStatus.RUNNING,
            created_at=T0 + timedelta(seconds=i // 2),
            agent="echo" if i % 5 else "approval",
        )
        await write(db, runs.upsert_run, state)
        expected.append(state.run_id)
    await write(db, runs.upsert_run, make_run("run_other", project_id="other"))
    expected.reverse()

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = await read(db, runs.list_runs, "default", limit=10, cursor=cursor)
        seen += [run.run_id for run in page]
        pages += 1
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3

    s1, _ = await read(db, runs.list_runs, "default", session_id="s1")
    assert [r.run_id for r in s1] == [r for r in expected if int(r[4:]) % 2]
    running, _ = await read(db, runs.list_runs, "default", statuses=["running", "queued"])
    assert [r.run_id for r in running] == [r for r in expected if int(r[4:]) % 3 == 0]
    approval, _ = await read(db, runs.list_runs, "default", agent="approval")
    assert [r.run_id for r in approval] == [r for r in expected if int(r[4:]) % 5 == 0]

    # Filters and cursor combine: page through one session's completed runs.
    seen, cursor = [], None
    while True:
        page, cursor = await read(
            db,
            runs.list_runs,
            "default",
            session_id="s2",
            statuses=[RunStatus.COMPLETED],
            limit=3,
            cursor=cursor,
        )
        seen += [run.run_id for run in page]
        if cursor is None:
            break
    assert seen == [r for r in expected if int(r[4:]) % 2 == 0 and int(r[4:]) % 3]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "e30", "eyJjIjoxLCJyIjoyfQ", "%%%"])
async def test_invalid_cursor_raises(db: Db, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await read(db, runs.list_runs, "default", cursor=cursor)


async def test_project_scoping(db: Db) -> None:
    await write(db, runs.upsert_run, make_run("run_1", project_id="acme"))
    t1 = StatusTransition(seq=1, status=RunStatus.QUEUED, at=T0)
    await write(db, runs.upsert_run, make_run("run_1", project_id="acme"), t1)
    await write(db, transcript.insert_events, "acme", "run_1", [event(1)])
    assert await read(db, runs.get_run, "acme", "run_1") is not None
    assert await read(db, runs.get_run, "default", "run_1") is None
    assert await read(db, runs.list_runs, "default") == ([], None)
    assert await read(db, runs.run_history, "default", "run_1") == []
    assert await read(db, transcript.list_events, "default", "run_1") == []
    assert await read(db, sessions.get_session, "default", "s1") is None
    assert await read(db, sessions.get_session, "acme", "s1") is not None

    # Session IDs are global, like their workflow IDs: another project's run reusing one must
    # not rewrite this project's session.
    intruder = make_run("run_2", project_id="default", created_at=T0 + timedelta(hours=1))
    await write(db, runs.upsert_run, intruder)
    acme = await read(db, sessions.get_session, "acme", "s1")
    assert (acme.last_run_id, acme.run_count, acme.last_activity_at) == ("run_1", 1, T0)


async def test_get_session_status(db: Db) -> None:
    def at(seconds: int) -> datetime:
        return T0 + timedelta(seconds=seconds)

    assert await read(db, sessions.get_session, "default", "s1") is None
    first = make_run("run_a", status=RunStatus.RUNNING, created_at=at(0), last_seq=4, version=2)
    await write(db, runs.upsert_run, first)
    summary = await read(db, sessions.get_session, "default", "s1")
    assert (summary.status, summary.active_run_id, summary.cursor) == ("active", "run_a", 4)
    assert summary.last_run_id == "run_a" and summary.run_count == 1

    # A run enqueued behind the running one: the running run stays the active one.
    await write(db, runs.upsert_run, make_run("run_b", created_at=at(5), updated_at=at(5)))
    summary = await read(db, sessions.get_session, "default", "s1")
    assert (summary.status, summary.active_run_id, summary.last_run_id) == (
        "active",
        "run_a",
        "run_b",
    )

    waiting = first.model_copy(
        update={"status": RunStatus.WAITING_FOR_INPUT, "version": 3, "updated_at": at(6)}
    )
    await write(db, runs.upsert_run, waiting)
    summary = await read(db, sessions.get_session, "default", "s1")
    assert (summary.status, summary.active_run_id) == ("waiting_for_input", "run_a")
    # The older run's write did not take "last run" back from the newer one.
    assert summary.last_run_id == "run_b"
    assert summary.last_activity_at == at(6)

    for run_id, created, seq in (("run_a", 0, 9), ("run_b", 5, 2)):
        ended = make_run(
            run_id,
            status=RunStatus.COMPLETED,
            created_at=at(created),
            updated_at=at(8),
            last_seq=seq,
            version=9,
        )
        await write(db, runs.upsert_run, ended)
    # A stale write with an older time does not move the session's activity back.
    await write(db, runs.upsert_run, make_run("run_a", created_at=at(0), updated_at=at(1)))
    summary = await read(db, sessions.get_session, "default", "s1")
    assert summary.status == "idle"
    assert (summary.active_run_id, summary.last_run_id, summary.cursor) == (None, "run_b", 2)
    assert summary.run_count == 2
    assert summary.created_at == at(0) and summary.last_activity_at == at(8)
    assert summary.agent == "echo"


async def test_datetimes_come_back_utc_aware(db: Db) -> None:
    # An offset other than UTC is stored as the same instant and read back in UTC.
    paris = timezone(timedelta(hours=1))
    created = datetime(2025, 3, 1, 13, 0, 0, 500, tzinfo=paris)
    transition = StatusTransition(seq=1, status=RunStatus.QUEUED, at=created)
    await write(db, runs.upsert_run, make_run("run_1", created_at=created), transition)
    await write(db, transcript.insert_events, "default", "run_1", [event(1)])
    await write(
        db, interactions.upsert_interaction, make_interaction("int_1", requested_at=created)
    )

    run = await read(db, runs.get_run, "default", "run_1")
    history = await read(db, runs.run_history, "default", "run_1")
    events = await read(db, transcript.list_events, "default", "run_1")
    interaction = await read(db, interactions.get_interaction, "default", "int_1")
    summary = await read(db, sessions.get_session, "default", "s1")
    stamps = [
        run.created_at,
        run.updated_at,
        history[0].at,
        events[0].ts,
        interaction.requested_at,
        summary.created_at,
        summary.last_activity_at,
    ]
    for stamp in stamps:
        assert stamp.tzinfo is UTC
    assert run.created_at == created
    assert run.created_at.hour == 12
    async with db[1]() as session:
        row = await session.scalar(select(SessionRow))
        assert row is not None and row.created_at.tzinfo is UTC


async def test_agent_catalogue_replace(db: Db) -> None:
    echo = AgentInfo(name="echo", kind="python", description="Echoes")
    approval = AgentInfo(name="approval-demo", kind="python")
    await write(db, agents.replace_agents, AgentList(replica_id="r1", agents=[echo, approval]))
    await write(db, agents.replace_agents, AgentList(replica_id="r1", agents=[echo, approval]))
    catalogue = await read(db, agents.list_agents)
    assert [(a.name, a.available) for a in catalogue] == [("approval-demo", True), ("echo", True)]

    # A runner that stops offering an agent: it stays listed, unavailable.
    await write(db, agents.replace_agents, AgentList(replica_id="r2", agents=[echo]))
    catalogue = await read(db, agents.list_agents)
    assert [(a.name, a.available, a.replica_id) for a in catalogue] == [
        ("approval-demo", False, "r1"),
        ("echo", True, "r2"),
    ]
    assert catalogue[1].description == "Echoes" and catalogue[1].updated_at.tzinfo is UTC
    available = await read(db, agents.list_agents, available_only=True)
    assert [a.name for a in available] == ["echo"]
