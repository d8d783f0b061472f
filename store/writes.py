"""Projection writes, called by activities.

Activities can run more than once (Temporal retries them), so every write here is idempotent:
an upsert keyed by business IDs. None of these functions commits; the caller owns the
transaction (``async with factory.begin() as session: ...``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, null
from sqlalchemy.ext.asyncio import AsyncSession

from store import interactions, sessions
from store.db import dialect_insert
from store.models import Run, RunStatusHistory
from workflows.types import RunState, StatusTransition

# Fixed when the run is created; a later projection never rewrites them, so a run keeps its
# place in keyset pages and its project.
_RUN_IDENTITY = frozenset({"run_id", "project_id", "session_id", "created_at"})

# Core tables, not ORM entities: rows are keyed by column name ("metadata", not "metadata_")
# and the statements stay plain INSERT ... ON CONFLICT.
_runs = Run.__table__
_history = RunStatusHistory.__table__


def _json(value: Any) -> Any:
    # SQL NULL rather than the JSON literal 'null', so "IS NULL" means "absent".
    return null() if value is None else value


def _run_row(state: RunState) -> dict[str, Any]:
    dumped = state.model_dump(
        mode="json", include={"input", "metadata", "usage", "attempts", "result", "error"}
    )
    return {
        "run_id": state.run_id,
        "session_id": state.session_id,
        "project_id": state.project_id,
        "agent": state.agent,
        "status": state.status.value,
        "status_reason": state.status_reason,
        "trigger_id": state.trigger_id,
        "idempotency_key": state.idempotency_key,
        "input": _json(dumped["input"]),
        "metadata": dumped["metadata"],
        "created_at": state.created_at,
        "started_at": state.started_at,
        "updated_at": state.updated_at,
        "ended_at": state.ended_at,
        "paused_at": state.paused_at,
        "last_seq": state.last_seq,
        "events": state.events,
        "steps": state.steps,
        "usage": dumped["usage"],
        "result": _json(dumped["result"]),
        "error": _json(dumped["error"]),
        "pending_interaction_id": (
            state.pending_interaction.interaction_id if state.pending_interaction else None
        ),
        "replica_id": state.replica_id,
        "attempts": dumped["attempts"],
        "version": state.version,
    }


async def upsert_run(
    session: AsyncSession,
    state: RunState,
    transition: StatusTransition | None = None,
    *,
    request_hash: str | None = None,
) -> None:
    """Project ``state`` to ``runs`` (and its session), plus ``transition`` to the history.

    The run row is only overwritten by a state whose ``version`` is at least the stored one,
    so a retried, stale write never moves a run back. ``request_hash`` (the fingerprint of the
    request that created the run) is kept from the first write that has one and never
    overwritten. The session's derived columns (``store.sessions``) are refreshed in the
    same transaction. The history row is keyed by ``(run_id, transition.seq)`` and written
    once. A pending interaction that has no row yet is recorded as pending, so ``get_run`` can
    always show what the run waits for.
    """
    # Session first: its row lock orders concurrent writers of the same session.
    await sessions.lock_session(session, state)
    row = _run_row(state)
    # Read from the state too, should the run state ever carry the fingerprint itself.
    row["request_hash"] = request_hash or getattr(state, "request_hash", None)
    stmt = dialect_insert(session, _runs).values(row)
    excluded = stmt.excluded
    set_: dict[str, Any] = {name: excluded[name] for name in row if name not in _RUN_IDENTITY}
    # Set once: a later projection that does not carry the fingerprint must not erase it.
    set_["request_hash"] = func.coalesce(_runs.c.request_hash, excluded.request_hash)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_runs.c.run_id],
        set_=set_,
        where=_runs.c.version <= excluded.version,
    )
    await session.execute(stmt)
    await sessions.refresh_session(session, state.project_id, state.session_id)
    if state.agent_session_id:
        await sessions.remember_agent_session(session, state)
    if state.pending_interaction is not None:
        await interactions.record_pending(
            session,
            state.pending_interaction,
            run_id=state.run_id,
            session_id=state.session_id,
            project_id=state.project_id,
        )
    if transition is not None:
        history = dialect_insert(session, _history).values(
            run_id=state.run_id,
            seq=transition.seq,
            project_id=state.project_id,
            status=transition.status.value,
            reason=transition.reason,
            at=transition.at,
        )
        await session.execute(
            history.on_conflict_do_nothing(index_elements=[_history.c.run_id, _history.c.seq])
        )
