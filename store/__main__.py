"""``python -m store migrate``: bring the database of ``TETHER_DATABASE_URL`` up to date (the same
as ``tether migrate``)."""

from __future__ import annotations

import argparse
import asyncio

from store.db import migrate_store
from tether.secret_box import SecretBox
from tether.settings import get_settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m store", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "migrate", help="apply every Alembic migration (upgrade head); create the project"
    )
    parser.parse_args(argv)

    settings = get_settings()
    box = SecretBox.from_settings_if_set(settings)
    shown = asyncio.run(migrate_store(settings.database_url, settings.default_project_id, box))
    print(f"migrated {shown}")


if __name__ == "__main__":
    main()
