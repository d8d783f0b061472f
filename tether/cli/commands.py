"""What each API command of ``tether`` does: ``run``, ``runs …``, ``interactions …``,
``sessions …``, ``agents``. Each returns the process exit code."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from tether.cli.api import Api, CliError
from tether.cli.follow import RunFollower
from tether.cli.prompt import Stdin, ask, can_pick, parse_answer
from tether.cli.render import (
    agents_table,
    interactions_table,
    run_card,
    runs_table,
    session_card,
    sessions_table,
    status_text,
)
from tether.cli.transcript import TranscriptPrinter

TERMINAL = {"completed", "failed", "cancelled", "timed_out"}


@dataclass
class Ctx:
    api: Api
    out: Console
    err: Console
    json: bool

    def emit(self, data: Any) -> None:
        """JSON for scripts, on stdout."""
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        sys.stdout.flush()


def default_responder() -> str:
    try:
        return os.environ.get("TETHER_RESPONDER") or getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _input(args: argparse.Namespace) -> Any:
    if args.input_json is not None:
        try:
            return json.loads(args.input_json)
        except ValueError as err:
            raise CliError(f"--input-json is not valid JSON: {err}", code="bad_input") from err
    return args.input


def _metadata(pairs: list[str] | None) -> dict[str, str]:
    metadata = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--metadata takes KEY=VALUE, not {pair!r}", code="bad_input")
        metadata[key] = value
    return metadata


# run


async def run(ctx: Ctx, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "agent": args.agent,
        "input": _input(args),
        "multitask": args.multitask,
        "wait": "none" if args.no_wait else "accepted",
        "metadata": _metadata(args.metadata),
    }
    if args.idempotency_key:
        body["idempotency_key"] = args.idempotency_key
    path = f"/v1/sessions/{args.session}/runs" if args.session else "/v1/runs"
    with ctx.err.status(f"starting {args.agent} …", spinner="dots"):
        started = await ctx.api.post(path, body)
    run_id = started["run_id"]
    if ctx.json and not args.follow:
        ctx.emit(started)
        return 0
    if ctx.json:
        sys.stdout.write(json.dumps({"id": None, "event": "run", "data": started}) + "\n")
    else:
        ctx.out.print(
            Text.assemble(
                ("▶ run ", "bold"),
                (run_id, "bold"),
                f" · {started['agent']} · session {started['session_id']} · ",
                status_text(started["status"]),
            ),
            soft_wrap=True,
        )
    if not args.follow:
        ctx.err.print(
            Text.assemble("follow it with ", (f"tether runs follow {run_id}", "bold")),
            soft_wrap=True,
        )
        return 0
    return await _follow(ctx, run_id, args)


async def _follow(ctx: Ctx, run_id: str, args: argparse.Namespace, after: int = 0) -> int:
    follower = RunFollower(
        ctx.api,
        run_id,
        out=ctx.out,
        err=ctx.err,
        json_lines=ctx.json,
        answer=not args.no_answer,
        responder=args.responder or default_responder(),
    )
    return await follower.run(after)


# runs


async def runs_ls(ctx: Ctx, args: argparse.Namespace) -> int:
    page = await ctx.api.get(
        "/v1/runs",
        session_id=args.session,
        status=args.status,
        agent=args.agent,
        trigger_id=args.trigger,
        order_by=args.order_by,
        direction="asc" if args.asc else "desc",
        limit=args.limit,
        cursor=args.cursor,
    )
    if ctx.json:
        ctx.emit(page)
        return 0
    if not page["runs"]:
        ctx.err.print("no runs")
        return 0
    ctx.out.print(runs_table(page["runs"], ctx.out.width))
    _next_page(ctx, page)
    return 0


def _next_page(ctx: Ctx, page: dict[str, Any]) -> None:
    if page.get("next_cursor"):
        ctx.err.print(
            Text.assemble("more: add ", (f"--cursor {page['next_cursor']}", "bold")),
            soft_wrap=True,
        )


async def runs_show(ctx: Ctx, args: argparse.Namespace) -> int:
    run_view = await ctx.api.get(f"/v1/runs/{args.run_id}")
    if ctx.json:
        ctx.emit(run_view)
        return 0
    history = await ctx.api.get(f"/v1/runs/{args.run_id}/history")
    ctx.out.print(run_card(run_view, history["transitions"]))
    if args.events:
        ctx.out.print(Text("transcript", "bold"))
        printer = TranscriptPrinter(ctx.out)
        after: int | None = 0
        while after is not None:
            page = await ctx.api.get(f"/v1/runs/{args.run_id}/events", after=after)
            for event in page["events"]:
                printer.event(event)
            after = page.get("next_after")
        printer.end_line()
    return 0


async def runs_follow(ctx: Ctx, args: argparse.Namespace) -> int:
    await ctx.api.get(f"/v1/runs/{args.run_id}")  # a clear 404 before streaming
    return await _follow(ctx, args.run_id, args, after=args.after)


async def runs_cancel(ctx: Ctx, args: argparse.Namespace) -> int:
    body = {"reason": args.reason} if args.reason else None
    accepted = await ctx.api.post(f"/v1/runs/{args.run_id}/cancel", body)
    if args.no_wait:
        if ctx.json:
            ctx.emit(accepted)
        else:
            ctx.out.print(f"cancel requested for run {args.run_id}")
        return 0
    with ctx.err.status(f"cancelling {args.run_id} …", spinner="dots"):
        final = await _wait_for_end(ctx.api, args.run_id, args.timeout)
    if ctx.json:
        ctx.emit(final)
    else:
        ctx.out.print(
            Text.assemble(f"run {args.run_id} ", status_text(final["status"])), soft_wrap=True
        )
    return 0 if final["status"] in TERMINAL else 1


async def _wait_for_end(api: Api, run_id: str, timeout: float) -> dict[str, Any]:
    """The run once it ended, or as it is when ``timeout`` runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        run_view = await api.get(f"/v1/runs/{run_id}")
        if run_view["status"] in TERMINAL or loop.time() > deadline:
            return run_view
        await asyncio.sleep(0.2)


# interactions


async def interactions_ls(ctx: Ctx, args: argparse.Namespace) -> int:
    page = await ctx.api.get(
        "/v1/interactions",
        status=args.status,
        session_id=args.session,
        run_id=args.run,
        limit=args.limit,
    )
    if ctx.json:
        ctx.emit(page)
        return 0
    if not page["interactions"]:
        ctx.err.print("no interactions")
        return 0
    ctx.out.print(interactions_table(page["interactions"], ctx.out.width))
    return 0


async def interactions_show(ctx: Ctx, args: argparse.Namespace) -> int:
    interaction = await ctx.api.get(f"/v1/interactions/{args.interaction_id}")
    if ctx.json:
        ctx.emit(interaction)
        return 0
    ctx.out.print(interactions_table([interaction], ctx.out.width))
    if interaction.get("response") is not None:
        who = f" by {interaction['responder']}" if interaction.get("responder") else ""
        ctx.out.print(f"answer: {json.dumps(interaction['response'])}{who}", soft_wrap=True)
    return 0


async def interactions_respond(ctx: Ctx, args: argparse.Namespace) -> int:
    interaction = await ctx.api.get(f"/v1/interactions/{args.interaction_id}")
    if args.response_json is not None:
        try:
            response = json.loads(args.response_json)
        except ValueError as err:
            raise CliError(f"--response-json is not valid JSON: {err}", code="bad_input") from err
    elif args.answer is not None:
        try:
            response = parse_answer(interaction, args.answer)
        except ValueError as err:
            raise CliError(str(err), code="invalid_answer") from err
    else:
        if interaction["status"] != "pending":
            raise CliError(
                f"interaction {args.interaction_id} is {interaction['status']}",
                status=409,
                code="interaction_not_pending",
            )
        stdin = Stdin()
        console = ctx.err if ctx.json else ctx.out
        answer = await ask(console, stdin, interaction, picker=can_pick(stdin, console))
        if answer is None:
            ctx.err.print("no answer given")
            return 3
        response = answer
    accepted = await ctx.api.post(
        f"/v1/interactions/{args.interaction_id}/respond",
        {"response": response, "responder": args.responder or default_responder()},
    )
    if ctx.json:
        ctx.emit(accepted)
    else:
        ctx.out.print(
            Text.assemble(
                ("✔ answered ", "green"),
                (json.dumps(response), "bold"),
                f" · run {accepted['run_id']} resumes",
            ),
            soft_wrap=True,
        )
    return 0


# sessions and agents


async def sessions_ls(ctx: Ctx, args: argparse.Namespace) -> int:
    page = await ctx.api.get(
        "/v1/sessions",
        status=args.status,
        agent=args.agent,
        limit=args.limit,
        cursor=args.cursor,
    )
    if ctx.json:
        ctx.emit(page)
        return 0
    if not page["sessions"]:
        ctx.err.print("no sessions")
        return 0
    ctx.out.print(sessions_table(page["sessions"], ctx.out.width))
    _next_page(ctx, page)
    return 0


async def sessions_show(ctx: Ctx, args: argparse.Namespace) -> int:
    session = await ctx.api.get(f"/v1/sessions/{args.session_id}")
    if ctx.json:
        ctx.emit(session)
        return 0
    ctx.out.print(session_card(session))
    runs = await ctx.api.get("/v1/runs", session_id=args.session_id, limit=args.limit)
    if runs["runs"]:
        ctx.out.print(runs_table(runs["runs"], ctx.out.width))
    return 0


async def agents_ls(ctx: Ctx, args: argparse.Namespace) -> int:
    agents = await ctx.api.get("/v1/agents")
    if ctx.json:
        ctx.emit(agents)
    else:
        ctx.out.print(agents_table(agents["agents"], ctx.out.width))
    return 0
