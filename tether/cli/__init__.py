"""``tether``: the command line. This module parses the arguments and runs ``tether dev`` and
``tether migrate``; ``tether keys`` (the store's API keys) is in ``keys.py``; the API commands
live in the other modules of ``tether/cli/``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

DESCRIPTION = """Tether: durable, detached agent runs on Temporal.

`tether dev` runs the whole stack; `tether migrate` migrates the store; `tether keys` makes,
lists and revokes API keys straight in the store (TETHER_DATABASE_URL). Every other command talks
to the HTTP API at --api (default: $TETHER_API_URL, else http://127.0.0.1:8000), sending the
API key $TETHER_API_KEY, else the dev stack's .tether/dev-admin-key (read from the current
directory). --json prints what the API answered."""

EXAMPLES = """examples:
  tether run approval-demo --input "clean the build folder" --follow
  tether runs ls --status waiting_for_input
  tether interactions ls --status pending
  tether interactions respond int_… allow
  echo 1 | tether runs follow run_…      # answer the pending question from a pipe
  export TETHER_API_KEY=$(tether keys create --role operator --name ci --expires-in 90d)

exit codes: 0 done (a followed run completed); 1 an error, or the followed run did not
complete; 2 bad usage; 3 the run waits for an answer stdin did not give; 130 detached (Ctrl-C).
"""

RUN_STATUSES = [
    "queued",
    "dispatching",
    "running",
    "waiting_for_input",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
]


def _dev(args: argparse.Namespace) -> None:
    from tether.settings import get_settings

    overrides = {
        "TETHER_API_PORT": args.api_port,
        "TETHER_RUNNER_PORT": args.runner_port,
        "TETHER_TEMPORAL_UI_PORT": args.ui_port,
        "TETHER_WORKER_METRICS_PORT": args.metrics_port,
        "TETHER_DATA_DIR": args.data_dir,
    }
    for key, value in overrides.items():
        if value is not None:
            os.environ[key] = str(value)
    if args.temporal_port is not None:
        os.environ["TETHER_TEMPORAL_ADDRESS"] = f"127.0.0.1:{args.temporal_port}"
    get_settings.cache_clear()

    from tether.devstack.supervisor import run_dev

    asyncio.run(run_dev(get_settings()))


def _migrate(_: argparse.Namespace) -> None:
    from store.db import migrate_store
    from tether.devstack.dev_secrets import with_dev_secrets
    from tether.secret_box import SecretBox
    from tether.settings import get_settings

    # The dev stack's own key, if it made one and none is configured.
    settings, _env = with_dev_secrets(get_settings(), create=False)
    box = SecretBox.from_settings_if_set(settings)
    shown = asyncio.run(migrate_store(settings.database_url, settings.default_project_id, box))
    print(f"migrated {shown}")


def _api_command(args: argparse.Namespace) -> int:
    """Run one API command; API errors become a readable message and exit code 1."""
    from rich.console import Console

    from tether.cli.api import Api, CliError, api_key_from_env
    from tether.cli.commands import Ctx
    from tether.cli.errors import show_error

    # Piped output is not cut at 80 columns: tables keep whole IDs and lines stay greppable.
    wide = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160
    out = Console(highlight=False, width=wide)
    err = Console(stderr=True, highlight=False)
    command: Callable[..., Awaitable[int]] = args.command_fn

    async def call() -> int:
        async with Api(args.api, api_key_from_env()) as api:
            return await command(Ctx(api, out, err, args.json), args)

    try:
        return asyncio.run(call())
    except CliError as error:
        show_error(err, error, as_json=args.json)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser() -> argparse.ArgumentParser:
    from tether.cli import commands as c
    from tether.cli.api import api_url_from_env

    parser = argparse.ArgumentParser(
        prog="tether",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--api", default=api_url_from_env(), help="the Tether API's base URL")
    parser.add_argument("--json", action="store_true", default=False, help="print JSON")
    # The same two options after the subcommand (``tether runs ls --json``); SUPPRESS keeps a
    # value given before the subcommand.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--api", default=argparse.SUPPRESS, help="the Tether API's base URL")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def api_command(
        group: argparse._SubParsersAction, name: str, fn: Callable[..., object], help: str
    ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, help=help, description=help, parents=[common])
        sub.set_defaults(func=_api_command, command_fn=fn)
        return sub

    def follow_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--no-answer",
            action="store_true",
            help="only watch: do not ask here when the run waits for a human",
        )
        sub.add_argument("--responder", help="who answers (default: $TETHER_RESPONDER or $USER)")

    run = api_command(commands, "run", c.run, "start a run of AGENT (and follow it)")
    run.add_argument("agent", metavar="AGENT")
    given = run.add_mutually_exclusive_group()
    given.add_argument("--input", "-i", help="the input, as text")
    given.add_argument("--input-json", metavar="JSON", help="the input, as JSON")
    run.add_argument("--session", "-s", help="run in this session (created on first use)")
    run.add_argument(
        "--follow", "-f", action="store_true", help="stream the transcript and answer questions"
    )
    run.add_argument(
        "--multitask",
        choices=["reject", "enqueue", "interrupt"],
        default="reject",
        help="if the session is busy: fail (default), queue, or interrupt the active run",
    )
    run.add_argument("--idempotency-key", help="a retry with the same key returns the same run")
    run.add_argument("--metadata", "-m", action="append", metavar="KEY=VALUE")
    run.add_argument(
        "--no-wait", action="store_true", help="answer once recorded, before a runner takes it"
    )
    follow_options(run)

    runs = commands.add_parser("runs", help="list, show, follow and cancel runs")
    runs_cmds = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")
    ls = api_command(runs_cmds, "ls", c.runs_ls, "list runs, newest first")
    ls.add_argument("--session", help="runs of this session")
    ls.add_argument(
        "--status",
        action="append",
        choices=RUN_STATUSES,
        metavar="STATUS",
        help="repeatable; one of " + ", ".join(RUN_STATUSES),
    )
    ls.add_argument("--agent")
    ls.add_argument("--trigger")
    ls.add_argument(
        "--order-by", choices=["created_at", "updated_at", "ended_at", "status"], default=None
    )
    ls.add_argument("--asc", action="store_true", help="oldest first")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--cursor", help="the next page, from the previous listing")
    show = api_command(runs_cmds, "show", c.runs_show, "a run: status, result, history")
    show.add_argument("run_id", metavar="RUN_ID")
    show.add_argument("--events", "-e", action="store_true", help="also print the transcript")
    follow = api_command(
        runs_cmds, "follow", c.runs_follow, "stream a run's transcript; answer its questions"
    )
    follow.add_argument("run_id", metavar="RUN_ID")
    follow.add_argument("--after", type=int, default=0, help="start after this event seq")
    follow_options(follow)
    cancel = api_command(runs_cmds, "cancel", c.runs_cancel, "cancel a run")
    cancel.add_argument("run_id", metavar="RUN_ID")
    cancel.add_argument("--reason")
    cancel.add_argument("--no-wait", action="store_true", help="do not wait until it stopped")
    cancel.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")

    interactions = commands.add_parser("interactions", help="questions runs ask humans")
    int_cmds = interactions.add_subparsers(
        dest="interactions_command", required=True, metavar="COMMAND"
    )
    ils = api_command(int_cmds, "ls", c.interactions_ls, "list interactions")
    ils.add_argument("--status", choices=["pending", "resolved", "expired", "cancelled"])
    ils.add_argument("--session")
    ils.add_argument("--run")
    ils.add_argument("--limit", type=int, default=50)
    ishow = api_command(int_cmds, "show", c.interactions_show, "one interaction")
    ishow.add_argument("interaction_id", metavar="INTERACTION_ID")
    respond = api_command(
        int_cmds,
        "respond",
        c.interactions_respond,
        "answer an interaction: an option number or ID, or text (asks if ANSWER is left out)",
    )
    respond.add_argument("interaction_id", metavar="INTERACTION_ID")
    respond.add_argument("answer", metavar="ANSWER", nargs="?")
    respond.add_argument("--response-json", metavar="JSON", help="the exact response object")
    respond.add_argument("--responder", help="who answers (default: $TETHER_RESPONDER or $USER)")

    sessions = commands.add_parser("sessions", help="sessions and their runs")
    ses_cmds = sessions.add_subparsers(dest="sessions_command", required=True, metavar="COMMAND")
    sls = api_command(ses_cmds, "ls", c.sessions_ls, "list sessions, most recently active first")
    sls.add_argument("--status", action="append", choices=["idle", "active", "waiting_for_input"])
    sls.add_argument("--agent")
    sls.add_argument("--limit", type=int, default=20)
    sls.add_argument("--cursor")
    sshow = api_command(ses_cmds, "show", c.sessions_show, "a session and its recent runs")
    sshow.add_argument("session_id", metavar="SESSION_ID")
    sshow.add_argument("--limit", type=int, default=10, help="how many runs to list")

    agents = commands.add_parser("agents", help="the agents runners offer")
    agent_cmds = agents.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    api_command(agent_cmds, "ls", c.agents_ls, "list agents")

    from tether.cli import keys

    keys.add_parser(commands)

    dev = commands.add_parser("dev", help="run the whole stack locally (Ctrl-C stops it)")
    dev.add_argument("--api-port", type=int)
    dev.add_argument("--runner-port", type=int)
    dev.add_argument("--temporal-port", type=int)
    dev.add_argument("--ui-port", type=int)
    dev.add_argument("--metrics-port", type=int, help="the worker's metrics port (0: off)")
    dev.add_argument("--data-dir")
    dev.set_defaults(func=_dev)

    migrate = commands.add_parser("migrate", help="migrate the store to the latest schema")
    migrate.set_defaults(func=_migrate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    if code:
        sys.exit(code)
