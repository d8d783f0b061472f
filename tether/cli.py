"""``tether``: the command line. ``tether dev`` runs the whole stack; ``tether migrate``."""

from __future__ import annotations

import argparse
import asyncio
import os

from tether.settings import get_settings


def _dev(args: argparse.Namespace) -> None:
    overrides = {
        "TETHER_API_PORT": args.api_port,
        "TETHER_RUNNER_PORT": args.runner_port,
        "TETHER_TEMPORAL_UI_PORT": args.ui_port,
        "TETHER_DATA_DIR": args.data_dir,
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    if args.temporal_port is not None:
        os.environ["TETHER_TEMPORAL_ADDRESS"] = f"127.0.0.1:{args.temporal_port}"
    get_settings.cache_clear()

    from tether.dev import run_dev

    asyncio.run(run_dev(get_settings()))


def _migrate(_: argparse.Namespace) -> None:
    from store.db import migrate

    asyncio.run(migrate(get_settings().database_url))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="tether", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev", help="run the whole stack locally (Ctrl-C stops it)")
    dev.add_argument("--api-port", type=int)
    dev.add_argument("--runner-port", type=int)
    dev.add_argument("--temporal-port", type=int)
    dev.add_argument("--ui-port", type=int)
    dev.add_argument("--data-dir")
    dev.set_defaults(func=_dev)

    migrate = commands.add_parser("migrate", help="migrate the store to the latest schema")
    migrate.set_defaults(func=_migrate)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
