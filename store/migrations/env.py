"""Alembic environment of the store.

Two ways in: ``store.db.migrate`` lends an open connection (``config.attributes["connection"]``);
the ``alembic`` command line builds an async engine from the URL (``-x url=...``,
``config.attributes["url"]`` or ``TETHER_DATABASE_URL``).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from store.db import create_engine, normalize_url
from store.models import Base

target_metadata = Base.metadata


def _url() -> str:
    config = context.config
    url = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    if not url:
        from tether.settings import get_settings

        url = get_settings().database_url
    return normalize_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_new_engine() -> None:
    engine = create_engine(_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_with_new_engine())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
