"""``python -m store migrate``: bring the database of ``TETHER_DATABASE_URL`` up to date."""

from __future__ import annotations

import argparse
import asyncio

from sqlalchemy.engine import make_url

from store.db import create_engine, ensure_project, migrate, normalize_url, session_factory
from tether.settings import get_settings


async def _migrate(url: str, project_id: str) -> None:
    await migrate(url)
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            # The migration creates "default"; a deployment may configure another one.
            await ensure_project(session, project_id, project_id)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply every Alembic migration (upgrade head)")
    parser.parse_args(argv)

    settings = get_settings()
    url = normalize_url(settings.database_url)
    asyncio.run(_migrate(url, settings.default_project_id))
    print(f"migrated {make_url(url).render_as_string(hide_password=True)}")


if __name__ == "__main__":
    main()
