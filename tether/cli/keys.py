"""``tether keys create|ls|revoke``: API keys, straight in the store (``TETHER_DATABASE_URL``).

These need no API key, which is the point: they make the first one. Whoever can run them can
write the store anyway. ``create`` prints the token alone on stdout (details on stderr), so
``export TETHER_API_KEY=$(tether keys create …)`` works; it is not shown again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd]?)$")


def parse_duration(text: str) -> timedelta:
    """``90`` (seconds), ``90s``, ``15m``, ``12h``, ``30d``."""
    match = _DURATION.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 3600, 15m, 12h, 30d)")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2) or "s"])


def _when(value: datetime | None, never: str = "-") -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else never


def keys_create(args: argparse.Namespace) -> int:
    from store.keys import Role, create_key_in_store
    from tether.ids import PROJECT_ID_PATTERN, is_valid_project_id
    from tether.settings import get_settings

    project = args.project or get_settings().default_project_id
    if not is_valid_project_id(project):
        print(f"tether: a project ID must match {PROJECT_ID_PATTERN}", file=sys.stderr)
        return 2
    expires_at = datetime.now(UTC) + args.expires_in if args.expires_in else None
    record, token = asyncio.run(
        create_key_in_store(
            get_settings().database_url,
            project,
            name=args.name,
            role=Role(args.role),
            expires_at=expires_at,
        )
    )
    if args.json:
        print(json.dumps({**record.model_dump(mode="json"), "token": token}))
        return 0
    print(token)
    print(
        f"created key {record.prefix} {record.name!r} ({record.role.value}) in project "
        f"{record.project_id}, expires {_when(record.expires_at, 'never')}. "
        "The token above is not shown again.",
        file=sys.stderr,
    )
    return 0


def keys_ls(args: argparse.Namespace) -> int:
    from store import keys
    from store.db import create_engine, session_factory
    from tether.settings import get_settings

    settings = get_settings()
    project = args.project or settings.default_project_id

    async def listed() -> list[keys.KeyRecord]:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine)() as session:
                return await keys.list_keys(session, project, include_revoked=args.all)
        finally:
            await engine.dispose()

    found = asyncio.run(listed())
    if args.json:
        print(json.dumps({"keys": [k.model_dump(mode="json") for k in found]}))
        return 0
    print(f"{'key_id':10} {'role':9} {'created':21} {'expires':21} {'last used':21} name")
    for key in found:
        revoked = f"  (revoked {_when(key.revoked_at)})" if key.revoked_at else ""
        print(
            f"{key.key_id:10} {key.role.value:9} {_when(key.created_at):21} "
            f"{_when(key.expires_at, 'never'):21} {_when(key.last_used_at):21} {key.name}{revoked}"
        )
    return 0


def keys_revoke(args: argparse.Namespace) -> int:
    from store import keys
    from store.db import create_engine, session_factory
    from tether.settings import get_settings

    settings = get_settings()
    project = args.project or settings.default_project_id

    async def revoke() -> keys.KeyRecord | None:
        engine = create_engine(settings.database_url)
        try:
            async with session_factory(engine).begin() as session:
                return await keys.revoke_key(session, project, args.key_id, datetime.now(UTC))
        finally:
            await engine.dispose()

    record = asyncio.run(revoke())
    if record is None:
        print(f"tether: project {project} has no key {args.key_id!r}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(record.model_dump(mode="json")))
    else:
        print(f"revoked key {record.prefix} {record.name!r} at {_when(record.revoked_at)}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    keys = commands.add_parser("keys", help="API keys, straight in the store (TETHER_DATABASE_URL)")
    cmds = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--project", help="the project (default: $TETHER_DEFAULT_PROJECT_ID, else default)"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON")

    create = cmds.add_parser(
        "create", parents=[common], help="create a key and print its token (shown once)"
    )
    create.add_argument("--name", required=True, help="who holds it: recorded as the actor")
    create.add_argument("--role", required=True, choices=["viewer", "operator", "admin"])
    create.add_argument(
        "--expires-in", type=parse_duration, help="e.g. 3600, 15m, 12h, 90d (default: never)"
    )
    create.set_defaults(func=keys_create)

    ls = cmds.add_parser("ls", parents=[common], help="list the project's keys")
    ls.add_argument("--all", action="store_true", help="revoked keys too")
    ls.set_defaults(func=keys_ls)

    revoke = cmds.add_parser("revoke", parents=[common], help="revoke a key (by its key ID)")
    revoke.add_argument("key_id")
    revoke.set_defaults(func=keys_revoke)
