"""Database fixtures: a migrated, empty SQLite or PostgreSQL database per test.

Load with ``pytest_plugins = ["tests.fixtures_db"]`` in ``tests/conftest.py``.

- ``database_url``: parametrized over ``sqlite`` and ``postgres``; the URL of a fresh, migrated
  database, dropped afterwards.
- ``db``: ``(engine, session_factory)`` on that database.
- ``migrated_database(kind, tmp_path)``: the same as an async context manager, for tests and
  fixtures that want one kind, several databases, or another scope.

PostgreSQL is the server at ``TETHER_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``); the user needs CREATEDB. When it cannot be
reached, the PostgreSQL cases are skipped with the reason, the SQLite ones still run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from store.db import create_engine, migrate, session_factory

DatabaseKind = Literal["sqlite", "postgres"]
DATABASE_KINDS: list[DatabaseKind] = ["sqlite", "postgres"]

DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Probed once per test session: "url" or "error".
_pg_probe: dict[str, str] = {}


def _plain_pg_url(url: str) -> str:
    # asyncpg takes libpq-style URLs, without SQLAlchemy's "+driver".
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def require_postgres() -> str:
    """The admin URL of the test PostgreSQL server, or skip the calling test."""
    if not _pg_probe:
        url = _plain_pg_url(os.environ.get("TETHER_TEST_PG_URL", DEFAULT_PG_ADMIN_URL))
        _pg_probe["url"] = url
        try:
            conn = await asyncpg.connect(url, timeout=5)
            await conn.close()
        except Exception as exc:  # any failure to connect means: no PostgreSQL here
            _pg_probe["error"] = f"{type(exc).__name__}: {exc}"
    if "error" in _pg_probe:
        shown = make_url(_pg_probe["url"]).render_as_string(hide_password=True)
        pytest.skip(f"PostgreSQL not reachable at {shown}: {_pg_probe['error']}")
    return _pg_probe["url"]


@pytest.fixture(scope="session")
async def postgres_admin_url() -> str:
    """The URL of a PostgreSQL database we may CREATE/DROP databases from; skips if down."""
    return await require_postgres()


@asynccontextmanager
async def migrated_database(kind: DatabaseKind, tmp_path: Path) -> AsyncIterator[str]:
    """Yield the SQLAlchemy URL of a new, migrated database of ``kind``; drop it afterwards.

    SQLite: a file under ``tmp_path``. PostgreSQL: a database ``tether_test_<hex>`` created on
    the test server and dropped with ``WITH (FORCE)`` so leftover connections cannot keep it.
    """
    name = f"tether_test_{uuid.uuid4().hex[:16]}"
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        await migrate(url)
        yield url
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind: {kind!r}")
    admin_url = await require_postgres()
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pg_url = make_url(admin_url).set(drivername="postgresql+asyncpg", database=name)
    try:
        await migrate(pg_url)
        yield pg_url.render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=DATABASE_KINDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, migrated database of each kind (``sqlite``, ``postgres``)."""
    async with migrated_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def db(
    database_url: str,
) -> AsyncIterator[tuple[AsyncEngine, async_sessionmaker[AsyncSession]]]:
    """``(engine, session_factory)`` on ``database_url``; the engine is disposed afterwards."""
    engine = create_engine(database_url)
    try:
        yield engine, session_factory(engine)
    finally:
        await engine.dispose()
