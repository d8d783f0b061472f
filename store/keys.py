"""The API keys aggregate: a project's keys, how a token is checked, and revocation.

A token is ``tk_<key ID>_<secret>`` (``tether.ids``); the store keeps the key ID, the visible
prefix and the SHA-256 of the whole token, never the token. ``find_valid_key`` looks the key up
by the ID in the token and compares hashes in constant time; a revoked or expired key is as
good as unknown. Nothing is cached: revoking a key takes effect on the next request.

Reads and writes are scoped by project, like every other aggregate; ``find_valid_key`` is the
one lookup without a project, because the token is what tells the project. Writes do not
commit: the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import cast

from pydantic import BaseModel
from sqlalchemy import Table, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from store.columns import RecordColumns
from store.db import create_engine, ensure_project, session_factory
from store.models import ApiKeyRow
from tether.ids import key_id_of_token, key_token_prefix, new_key_id, new_key_token

# ``last_used_at`` is written at most this often per key: a busy key costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)

_keys = cast(Table, ApiKeyRow.__table__)


class Role(StrEnum):
    """What a key may do; each role may do everything the roles before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class KeyRecord(BaseModel):
    """An API key as stored, without its hash."""

    key_id: str
    project_id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    def valid_at(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


_COLUMNS = RecordColumns.of(ApiKeyRow, KeyRecord)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _record(row: ApiKeyRow) -> KeyRecord:
    return KeyRecord.model_validate(_COLUMNS.fields(row))


# Reads.


async def list_keys(
    session: AsyncSession, project_id: str, *, include_revoked: bool = False
) -> list[KeyRecord]:
    """The project's keys, oldest first."""
    stmt = select(ApiKeyRow).where(ApiKeyRow.project_id == project_id)
    if not include_revoked:
        stmt = stmt.where(ApiKeyRow.revoked_at.is_(None))
    rows = await session.scalars(stmt.order_by(ApiKeyRow.created_at, ApiKeyRow.key_id))
    return [_record(row) for row in rows]


async def get_key(session: AsyncSession, project_id: str, key_id: str) -> KeyRecord | None:
    row = await session.get(ApiKeyRow, key_id)
    if row is None or row.project_id != project_id:
        return None
    return _record(row)


async def find_valid_key(session: AsyncSession, token: str, now: datetime) -> KeyRecord | None:
    """The key ``token`` belongs to, if the token is right and the key neither revoked nor
    expired at ``now``; otherwise ``None`` (the caller cannot tell why, on purpose)."""
    key_id = key_id_of_token(token)
    if key_id is None:
        return None
    row = await session.get(ApiKeyRow, key_id, populate_existing=True)
    if row is None or not hmac.compare_digest(row.hash, token_hash(token)):
        return None
    record = _record(row)
    return record if record.valid_at(now) else None


# Writes.


async def create_key(
    session: AsyncSession,
    project_id: str,
    *,
    name: str,
    role: Role,
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[KeyRecord, str]:
    """A new key of ``project_id`` and its token, which is returned here and nowhere else."""
    key_id = new_key_id()
    token = new_key_token(key_id)
    record = KeyRecord(
        key_id=key_id,
        project_id=project_id,
        name=name,
        role=role,
        prefix=key_token_prefix(key_id),
        created_at=now,
        expires_at=expires_at,
    )
    row = {**_COLUMNS.row(record), "hash": token_hash(token)}
    await session.execute(_keys.insert().values(row))
    return record, token


async def revoke_key(
    session: AsyncSession, project_id: str, key_id: str, now: datetime
) -> KeyRecord | None:
    """Revoke the key (again is a no-op: the first revocation time stays); ``None`` if the
    project has no such key."""
    await session.execute(
        update(_keys)
        .where(
            _keys.c.project_id == project_id,
            _keys.c.key_id == key_id,
            _keys.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return await get_key(session, project_id, key_id)


async def touch_key(session: AsyncSession, key: KeyRecord, now: datetime) -> None:
    """Note that ``key`` was used at ``now``, unless that was noted less than
    ``LAST_USED_RESOLUTION`` ago (the condition is in SQL, so concurrent requests write once)."""
    if key.last_used_at is not None and now - key.last_used_at < LAST_USED_RESOLUTION:
        return
    await session.execute(
        update(_keys)
        .where(
            _keys.c.key_id == key.key_id,
            or_(
                _keys.c.last_used_at.is_(None),
                _keys.c.last_used_at < now - LAST_USED_RESOLUTION,
            ),
        )
        .values(last_used_at=now)
    )


async def create_key_in_store(
    url: str,
    project_id: str,
    *,
    name: str,
    role: Role,
    expires_at: datetime | None = None,
) -> tuple[KeyRecord, str]:
    """Create a key straight in the store at ``url`` (and its project, if new), committed:
    the first key of a deployment (``tether keys create``), the dev stack's and the tests'."""
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            await ensure_project(session, project_id, project_id)
            return await create_key(
                session,
                project_id,
                name=name,
                role=role,
                now=datetime.now(UTC),
                expires_at=expires_at,
            )
    finally:
        await engine.dispose()
