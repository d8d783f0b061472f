"""API keys of the caller's project: create (the token is shown once), list, revoke. Admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter

from api.auth import ADMIN
from api.deps import DbDep, ProjectDep
from api.errors import not_found
from api.schemas.keys import KeyCreate, KeyCreated, KeyList, KeyPublic
from store import keys

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.post("", status_code=201, response_model=KeyCreated, dependencies=[ADMIN])
async def create_key(body: KeyCreate, db: DbDep, project_id: ProjectDep) -> KeyCreated:
    """A new key of this project. Its ``token`` is in this answer and nowhere else."""
    now = datetime.now(UTC)
    expires_at = now + timedelta(seconds=body.expires_in_s) if body.expires_in_s else None
    record, token = await keys.create_key(
        db, project_id, name=body.name, role=body.role, now=now, expires_at=expires_at
    )
    await db.commit()
    return KeyCreated.of(record, token=token)


@router.get("", response_model=KeyList, dependencies=[ADMIN])
async def list_keys(db: DbDep, project_id: ProjectDep, include_revoked: bool = False) -> KeyList:
    found = await keys.list_keys(db, project_id, include_revoked=include_revoked)
    return KeyList(keys=[KeyPublic.of(k) for k in found])


@router.delete("/{key_id}", response_model=KeyPublic, dependencies=[ADMIN])
async def revoke_key(key_id: str, db: DbDep, project_id: ProjectDep) -> KeyPublic:
    """Revoke the key: refused from the next request on. Revoking it again changes nothing."""
    record = await keys.revoke_key(db, project_id, key_id, datetime.now(UTC))
    if record is None:
        raise not_found("key", key_id)
    await db.commit()
    return KeyPublic.of(record)
