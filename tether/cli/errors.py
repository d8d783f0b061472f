"""API errors as the CLI shows them: the API's message, its code and status, and a hint drawn
from the error's details where one helps."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.text import Text

from tether.cli.api import CliError


def hints(error: CliError) -> list[str]:
    details = error.details
    out = []
    if error.code == "unknown_agent" and details.get("available") is not None:
        out.append("available agents: " + (", ".join(details["available"]) or "none"))
    if error.code == "session_busy" and details.get("active_run_id"):
        out.append(
            f"the session is busy with run {details['active_run_id']}; "
            "use --multitask enqueue or --multitask interrupt"
        )
    if error.code == "invalid_response" and details.get("options"):
        out.append("options: " + ", ".join(details["options"]))
    for item in details.get("errors") or []:
        where = ".".join(str(part) for part in item.get("loc", []) if part != "body")
        out.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return out


def show_error(console: Console, error: CliError, *, as_json: bool) -> None:
    """On stderr: the error JSON with ``--json``, else a readable line and hints."""
    if as_json:
        sys.stderr.write(json.dumps(error.as_json()) + "\n")
        return
    parts = () if error.code == "unreachable" else (error.status, error.code)
    where = " ".join(str(p) for p in parts if p)
    line = Text.assemble(("error: ", "bold red"), error.message)
    if where:
        line.append(f" ({where})", "bright_black")
    console.print(line, soft_wrap=True)
    for hint in hints(error):
        console.print(Text("  " + hint, "bright_black"), soft_wrap=True)
