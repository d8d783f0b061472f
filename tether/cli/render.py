"""How the CLI shows things: tables of runs, interactions, sessions and agents; the cards of a
run, a session and a question waiting for an answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {
    "queued": "bright_black",
    "dispatching": "cyan",
    "running": "blue",
    "waiting_for_input": "bold magenta",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "yellow",
    "timed_out": "red",
    # sessions and interactions
    "idle": "bright_black",
    "active": "blue",
    "pending": "bold magenta",
    "resolved": "green",
    "expired": "yellow",
}


def status_text(status: str | None) -> Text:
    status = status or "?"
    return Text(status, style=STATUS_STYLE.get(status, ""))


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ago(value: str | None) -> str:
    """``12s ago``, ``3m ago``, ``2h ago``; older: the local date."""
    at = _time(value)
    if at is None:
        return "-"
    seconds = (datetime.now(UTC) - at).total_seconds()
    if seconds < 0:
        return "in " + duration(-seconds * 1000)
    if seconds < 60:
        return f"{seconds:.0f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h ago"
    return at.astimezone().strftime("%Y-%m-%d %H:%M")


def local(value: str | None) -> str:
    at = _time(value)
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S") if at else "-"


def duration(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    return f"{seconds // 3600:.0f}h{(seconds % 3600) // 60:02.0f}m"


def preview(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def tokens(usage: dict[str, Any] | None) -> str:
    if not usage:
        return "-"
    total = usage.get("total_tokens")
    if total is None:
        total = (usage.get("input_tokens") or 0) + (usage.get("output_tokens") or 0)
    return str(total)


Cell = str | Text
# (header, priority, cell): priority 0 is always shown; on a narrow terminal the columns with
# the highest priority numbers are left out first. IDs are never cut: they are what the next
# command needs.
Column = tuple[str, int, Callable[[dict[str, Any]], Cell]]
WRAPPING = {"prompt", "description"}


def _table(columns: list[Column], rows: list[dict[str, Any]], width: int) -> Table:
    cells = [[cell(row) for _, _, cell in columns] for row in rows]

    def need(i: int) -> int:
        longest = max([len(columns[i][0]), *(len(str(r[i])) for r in cells)])
        return min(longest, 24) if columns[i][0] in WRAPPING else longest

    shown = list(range(len(columns)))
    while sum(need(i) + 3 for i in shown) > width:
        droppable = [i for i in shown if columns[i][1] > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i][1], i)))
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", pad_edge=False, show_edge=False)
    for i in shown:
        header = columns[i][0]
        if header in WRAPPING:
            table.add_column(header)
        else:
            table.add_column(header, no_wrap=True, min_width=need(i))
    for row_cells in cells:
        table.add_row(*(row_cells[i] for i in shown))
    return table


RUN_COLUMNS: list[Column] = [
    ("run", 0, lambda r: r["run_id"]),
    ("agent", 2, lambda r: r.get("agent", "")),
    ("status", 0, lambda r: status_text(r.get("status"))),
    ("session", 4, lambda r: r.get("session_id", "")),
    ("created", 1, lambda r: ago(r.get("created_at"))),
    ("duration", 3, lambda r: duration(r.get("duration_ms"))),
    ("steps", 5, lambda r: str(r.get("steps", 0))),
    ("tokens", 6, lambda r: tokens(r.get("usage"))),
]

INTERACTION_COLUMNS: list[Column] = [
    ("interaction", 0, lambda r: r["interaction_id"]),
    ("kind", 4, lambda r: r.get("kind", "")),
    ("status", 0, lambda r: status_text(r.get("status"))),
    ("prompt", 1, lambda r: preview(r.get("prompt", ""), 60)),
    ("options", 2, lambda r: "/".join(o["option_id"] for o in r.get("options") or []) or "text"),
    ("run", 5, lambda r: r.get("run_id", "")),
    ("asked", 3, lambda r: ago(r.get("requested_at"))),
    (
        "expires",
        6,
        lambda r: ago(r.get("expires_at")) if r.get("status") == "pending" else "-",
    ),
]

SESSION_COLUMNS: list[Column] = [
    ("session", 0, lambda r: r["session_id"]),
    ("status", 0, lambda r: status_text(r.get("status"))),
    ("agent", 2, lambda r: r.get("agent") or "-"),
    ("runs", 3, lambda r: str(r.get("run_count", 0))),
    ("active run", 4, lambda r: r.get("active_run_id") or "-"),
    ("last run", 5, lambda r: r.get("last_run_id") or "-"),
    ("last activity", 1, lambda r: ago(r.get("last_activity_at"))),
]

AGENT_COLUMNS: list[Column] = [
    ("agent", 0, lambda r: r["name"]),
    ("kind", 2, lambda r: r.get("kind", "")),
    (
        "available",
        1,
        lambda r: Text("yes", "green") if r.get("available", True) else Text("no", "red"),
    ),
    ("description", 3, lambda r: r.get("description", "")),
]


def runs_table(rows: list[dict[str, Any]], width: int = 200) -> Table:
    return _table(RUN_COLUMNS, rows, width)


def interactions_table(rows: list[dict[str, Any]], width: int = 200) -> Table:
    return _table(INTERACTION_COLUMNS, rows, width)


def sessions_table(rows: list[dict[str, Any]], width: int = 200) -> Table:
    return _table(SESSION_COLUMNS, rows, width)


def agents_table(rows: list[dict[str, Any]], width: int = 200) -> Table:
    return _table(AGENT_COLUMNS, rows, width)


def _count(n: int | None, noun: str) -> str:
    return f"{n or 0} {noun}" + ("" if n == 1 else "s")


def _fields(rows: list[tuple[str, Any]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        if value not in (None, "", [], {}):
            grid.add_row(name, value if isinstance(value, Text) else str(value))
    return grid


def run_card(run: dict[str, Any], history: list[dict[str, Any]] | None = None) -> Panel:
    result = run.get("result") or {}
    error = run.get("error") or {}
    usage = run.get("usage") or {}
    pending = run.get("pending_interaction")
    rows: list[tuple[str, Any]] = [
        ("status", status_line(run.get("status"), run.get("status_reason"))),
        ("agent", run.get("agent")),
        ("session", run.get("session_id")),
        ("trigger", run.get("trigger_id")),
        ("input", preview(run.get("input"), 200) if run.get("input") is not None else None),
        ("created", local(run.get("created_at"))),
        ("started", local(run.get("started_at")) if run.get("started_at") else None),
        ("ended", local(run.get("ended_at")) if run.get("ended_at") else None),
        ("duration", duration(run.get("duration_ms"))),
        ("progress", f"{_count(run.get('events'), 'event')} · {_count(run.get('steps'), 'step')}"),
        ("usage", ", ".join(f"{k} {v}" for k, v in usage.items()) if usage else None),
        ("runner", run.get("replica_id")),
        ("output", result.get("output")),
        ("stop reason", result.get("stop_reason")),
        ("error", Text(error.get("message") or json.dumps(error), "red") if error else None),
    ]
    if pending:
        rows.append(
            (
                "waiting for",
                Text.assemble(
                    (pending.get("prompt", ""), "magenta"),
                    f"  ({pending['interaction_id']})",
                ),
            )
        )
    parts: list[Any] = [_fields(rows)]
    if history:
        steps = Table.grid(padding=(0, 2))
        for transition in history:
            steps.add_row(
                local(transition.get("at")),
                status_text(transition.get("status")),
                Text(transition.get("reason") or "", "bright_black"),
            )
        parts += [Text("\nhistory", "bold"), steps]
    return Panel(Group(*parts), title=Text(run["run_id"], "bold"), title_align="left", expand=False)


def session_card(session: dict[str, Any]) -> Panel:
    rows: list[tuple[str, Any]] = [
        ("status", status_text(session.get("status"))),
        ("agent", session.get("agent")),
        ("runs", session.get("run_count")),
        ("active run", session.get("active_run_id")),
        ("queued", ", ".join(session.get("queued_run_ids") or [])),
        ("last run", session.get("last_run_id")),
        ("stream cursor", session.get("cursor")),
        ("created", local(session.get("created_at"))),
        ("last activity", f"{local(session.get('last_activity_at'))}"),
    ]
    return Panel(
        _fields(rows), title=Text(session["session_id"], "bold"), title_align="left", expand=False
    )


def interaction_card(interaction: dict[str, Any], *, numbered: bool = True) -> Panel:
    """The question a run asks, clearly shown: prompt, what the tool would do, the options."""
    parts: list[Any] = [Text(interaction.get("prompt", ""), "bold")]
    tool = interaction.get("tool_call") or {}
    if tool:
        line = Text.assemble(("tool  ", "bright_black"), (tool.get("title") or "", "yellow"))
        raw = tool.get("raw_input")
        if raw:
            line.append("  " + preview(raw, 80), "bright_black")
        parts.append(line)
    options = interaction.get("options") or []
    if options and numbered:
        for index, option in enumerate(options, 1):
            parts.append(
                Text.assemble(
                    f"  {index}. ",
                    (option.get("name") or option["option_id"], option_style(option)),
                )
                + Text(f"  ({option['option_id']})", "bright_black")
            )
    elif interaction.get("kind") == "input":
        schema = interaction.get("response_schema")
        hint = "answer with text" + (" or a JSON object: " + preview(schema, 60) if schema else "")
        parts.append(Text(hint, "bright_black"))
    footer = f"{interaction['interaction_id']}"
    if interaction.get("expires_at"):
        footer += f" · expires {local(interaction['expires_at'])}"
    parts.append(Text(footer, "bright_black"))
    return Panel(
        Group(*parts),
        title=Text("⏸ the run is waiting for you", "bold magenta"),
        title_align="left",
        border_style="magenta",
        expand=False,
    )


def option_style(option: dict[str, Any]) -> str:
    """Green for options that allow, red for those that reject (ACP option kinds or IDs)."""
    kind = option.get("kind") or option.get("option_id") or ""
    if kind.startswith(("allow", "approve", "yes")):
        return "green"
    if kind.startswith(("reject", "deny", "no")):
        return "red"
    return ""


def status_line(status: str | None, reason: str | None) -> Text:
    text = status_text(status)
    if reason:
        text.append(f" ({reason})", "bright_black")
    return text
