"""Interactions: what runs ask humans, and the humans' answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.auth import VIEWER, OperatorDep
from api.deps import DbDep, ProjectDep, TemporalDep
from api.errors import ApiError, not_found
from api.schemas.interactions import (
    Accepted,
    InteractionList,
    InteractionPublic,
    InteractionStatus,
    ResponseCreate,
)
from clients import sessions
from store import interactions
from workflows.types import InteractionRecord, RespondSignal

router = APIRouter(prefix="/v1/interactions", tags=["interactions"])


@router.get("", response_model=InteractionList, dependencies=[VIEWER])
async def list_interactions(
    db: DbDep,
    project_id: ProjectDep,
    status: InteractionStatus | None = None,
    session_id: str | None = None,
    run_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> InteractionList:
    rows = await interactions.list_interactions(
        db, project_id, status=status, session_id=session_id, run_id=run_id, limit=limit
    )
    return InteractionList(interactions=[InteractionPublic.of(r) for r in rows])


async def _get(db: DbDep, project_id: str, interaction_id: str) -> InteractionRecord:
    record = await interactions.get_interaction(db, project_id, interaction_id)
    if record is None:
        raise not_found("interaction", interaction_id)
    return record


@router.get("/{interaction_id}", response_model=InteractionPublic, dependencies=[VIEWER])
async def get_interaction(
    interaction_id: str, db: DbDep, project_id: ProjectDep
) -> InteractionPublic:
    return InteractionPublic.of(await _get(db, project_id, interaction_id))


def validate_response(record: InteractionRecord, response: dict) -> None:
    """422 unless ``response`` answers this interaction."""
    if record.kind == "permission":
        option_ids = [o.option_id for o in record.options]
        chosen = response.get("option_id")
        if set(response) != {"option_id"} or chosen not in option_ids:
            raise ApiError(
                422,
                "invalid_response",
                f'answer with {{"option_id": ...}}, one of {option_ids}',
                {"options": option_ids, "response": response},
            )
        return
    if "text" in response and not isinstance(response["text"], str):
        raise ApiError(422, "invalid_response", "`text` must be a string")
    if not response:
        raise ApiError(422, "invalid_response", 'answer with {"text": ...} or the JSON asked for')
    required = (record.response_schema or {}).get("required", [])
    missing = [key for key in required if key not in response]
    if missing and "text" not in response:
        raise ApiError(422, "invalid_response", f"missing fields {missing}", {"missing": missing})


@router.post("/{interaction_id}/respond", status_code=202, response_model=Accepted)
async def respond(
    interaction_id: str,
    body: ResponseCreate,
    db: DbDep,
    temporal: TemporalDep,
    project_id: ProjectDep,
    principal: OperatorDep,
) -> Accepted:
    """Answer a pending interaction; the answer reaches the waiting run as a signal.

    Concurrent answers are settled by the run: the first wins, later ones are kept as ignored.
    """
    record = await _get(db, project_id, interaction_id)
    if record.status != "pending":
        raise ApiError(
            409,
            "interaction_not_pending",
            f"interaction {interaction_id} is {record.status}",
            {"status": record.status},
        )
    validate_response(record, body.response)
    answer = RespondSignal(
        run_id=record.run_id,
        interaction_id=interaction_id,
        response=body.response,
        # With a key, the key's name is the responder; the free-text field counts only when
        # auth is off (no key to name).
        responder=principal.actor if principal.key_id else body.responder,
    )
    await sessions.signal_respond(temporal, record.project_id, record.session_id, answer)
    return Accepted(run_id=record.run_id, interaction_id=interaction_id)
