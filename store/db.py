"""Engine, sessions and migrations of the store.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) the production one. Callers
pass whatever URL the user configured; ``normalize_url`` picks the async driver.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as _create_async_engine
from sqlalchemy.pool import StaticPool

from store.models import Project
from tether.secret_box import SecretBox

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long a SQLite writer waits for another one before giving up with "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 10_000
# PostgreSQL: how long to wait for a connection from the pool, and for a new one to open.
POOL_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0

_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


def normalize_url(url: str | URL) -> str:
    """Return ``url`` with the async driver this project uses.

    ``postgres://`` and ``postgresql://`` become ``postgresql+asyncpg://``, ``sqlite://`` becomes
    ``sqlite+aiosqlite://``; URLs that already name a driver are returned unchanged.
    """
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is not None:
        parsed = parsed.set(drivername=driver)
    return parsed.render_as_string(hide_password=False)


def _is_memory_sqlite(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or "mode=memory" in database


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while an activity writes; synchronous=normal is durable across a
    # process crash in WAL mode at a fraction of the fsyncs; SQLite leaves foreign keys off
    # unless asked, per connection.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _connect_errors_are_disconnects(context: ExceptionContext) -> None:
    """An error while opening a connection (server down, refusing connections, too many
    clients) says the store cannot be reached now, not that a query is wrong: mark it so
    (``connection_invalidated``), as the driver marks a connection lost mid-query."""
    if context.connection is None:
        context.is_disconnect = True


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """Create the async engine for ``url`` (normalized first), tuned for its backend.

    SQLite: WAL, ``synchronous=normal``, foreign keys and a busy timeout on every connection;
    the folder of a file database is created. PostgreSQL: a pre-pinged, recycled pool.
    Extra keyword arguments go to ``create_async_engine`` and win over these defaults.
    """
    parsed = make_url(normalize_url(url))
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if _is_memory_sqlite(parsed):
            # Every new connection to :memory: is a new, empty database: share one.
            options["poolclass"] = StaticPool
        else:
            database = parsed.database or ""
            if not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    elif parsed.get_backend_name() == "postgresql":
        # Bounded waits: a server that is down, or a pool that is exhausted, fails a request in
        # seconds (the API answers 503 store_unavailable) instead of holding it for a minute.
        options.update(
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=True,
            pool_recycle=1800,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={"timeout": CONNECT_TIMEOUT_S},
        )
    options.update(kwargs)
    engine = _create_async_engine(parsed, **options)
    event.listen(engine.sync_engine, "handle_error", _connect_errors_are_disconnects)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions bound to ``engine``; objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config pointing at ``store/migrations``, usable from any working directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # Kept out of the ini options: those go through configparser, which chokes on '%'.
        config.attributes["url"] = normalize_url(url)
    return config


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(
    url: str | URL, revision: str = "head", *, secret_box: SecretBox | None = None
) -> None:
    """Bring the database at ``url`` up to ``revision`` (Alembic ``upgrade``); idempotent.

    Alembic runs on a connection lent by an async engine (``run_sync``), so this works inside
    a running event loop and needs no ``alembic.ini``. ``secret_box`` seals the webhook secrets
    a migration finds in clear (default: the one of the settings, if there are any to seal).
    """
    engine = create_engine(url)
    config = alembic_config(url)
    config.attributes["secret_box"] = secret_box
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, config, revision)
    finally:
        await engine.dispose()


def dialect_insert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` into ``table`` for the session's backend, with its ``on_conflict_*`` methods.

    PostgreSQL and SQLite spell upserts the same way, but each dialect has its own construct.
    """
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


async def ensure_project(session: AsyncSession, project_id: str, name: str) -> None:
    """Create the project row if it does not exist (does not commit)."""
    stmt = dialect_insert(session, Project).values(
        project_id=project_id, name=name, created_at=datetime.now(UTC)
    )
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[Project.project_id]))


async def migrate_store(
    url: str | URL, project_id: str, secret_box: SecretBox | None = None
) -> str:
    """What ``tether migrate`` and ``python -m store migrate`` both do: migrate the store at
    ``url`` to the latest schema, then make sure the project ``project_id`` exists, and, given
    a ``secret_box``, seal again with its current key the secrets sealed with a previous one.

    The first migration creates the project "default"; a deployment may configure another one
    (``TETHER_DEFAULT_PROJECT_ID``). Idempotent. Returns the URL migrated, its password hidden,
    for the caller to show.
    """
    from store.triggers import reseal_webhook_secrets  # store.triggers imports this module

    await migrate(url, secret_box=secret_box)
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            await ensure_project(session, project_id, project_id)
            if secret_box is not None:
                await reseal_webhook_secrets(session, secret_box)
    finally:
        await engine.dispose()
    return make_url(normalize_url(url)).render_as_string(hide_password=True)
