"""The live transcript as the CLI prints it: message deltas inline, thoughts dimmed, tool calls
with their status, plans as checklists, questions and answers, and the run's closing line."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from tether.cli.render import duration, preview, status_line, tokens

TOOL_MARK = {
    "pending": ("○", "yellow"),
    "in_progress": ("◐", "cyan"),
    "completed": ("✔", "green"),
    "failed": ("✘", "red"),
}

PLAN_MARK = {"completed": ("☑", "green"), "in_progress": ("◐", "cyan"), "pending": ("☐", "")}


class TranscriptPrinter:
    """Prints transcript events as they arrive. Message deltas stream inline, and a final
    ``message`` that repeats them is not printed twice."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.mid_line = False  # deltas printed, no newline yet
        self.streamed = False  # deltas since the last full message
        self.tools: dict[str, str] = {}

    def _line(self, *parts: str | tuple[str, str] | Text) -> None:
        self.end_line()
        self.console.print(Text.assemble(*parts), soft_wrap=True)

    def end_line(self) -> None:
        if self.mid_line:
            self.console.print(soft_wrap=True)
            self.mid_line = False

    def event(self, event: dict[str, Any]) -> None:
        kind, data = event.get("type", ""), event.get("data") or {}
        handler = getattr(self, "_" + kind.replace(".", "_"), None)
        if handler is not None:
            handler(data)
        else:
            self._line(("· ", "bright_black"), (f"{kind} {preview(data, 100)}", "bright_black"))

    def _run_started(self, data: dict[str, Any]) -> None:
        attempt = data.get("attempt", 1)
        again = f", attempt {attempt}" if attempt and attempt > 1 else ""
        self._line(("▶ started", "bright_black"), (f" on {data.get('replica_id')}{again}", "dim"))

    def _message_delta(self, data: dict[str, Any]) -> None:
        if not self.mid_line:
            self.console.print(Text("◆ ", "bold cyan"), end="", soft_wrap=True)
        self.console.print(Text(str(data.get("text", ""))), end="", soft_wrap=True)
        self.mid_line = self.streamed = True

    def _message(self, data: dict[str, Any]) -> None:
        if self.streamed:  # the deltas already showed it
            self.end_line()
        else:
            self._line(("◆ ", "bold cyan"), Text(str(data.get("text", ""))))
        self.streamed = False

    def _thought(self, data: dict[str, Any]) -> None:
        self._line(("∴ ", "bright_black"), (str(data.get("text", "")), "italic bright_black"))

    def _tool_call(self, data: dict[str, Any]) -> None:
        call_id = str(data.get("tool_call_id", ""))
        title = str(data.get("title") or data.get("kind") or call_id)
        self.tools[call_id] = title
        self._tool_line(title, data.get("status") or "pending", data)

    def _tool_call_update(self, data: dict[str, Any]) -> None:
        call_id = str(data.get("tool_call_id", ""))
        title = str(data.get("title") or self.tools.get(call_id) or call_id)
        self._tool_line(title, data.get("status") or "updated", data)

    def _tool_line(self, title: str, status: str, data: dict[str, Any]) -> None:
        mark, style = TOOL_MARK.get(status, ("·", ""))
        detail = data.get("reason") or ""
        output = data.get("raw_output")
        if output is not None:
            detail = (detail + " " if detail else "") + preview(output, 60)
        self._line(
            (f"{mark} ", style),
            ("tool ", "bright_black"),
            (title, "yellow"),
            (f" [{status}]", style),
            (f" {detail}" if detail else "", "bright_black"),
        )

    def _plan(self, data: dict[str, Any]) -> None:
        self._line(("☰ plan", "bold"))
        for entry in data.get("entries") or []:
            mark, style = PLAN_MARK.get(entry.get("status", "pending"), ("☐", ""))
            self._line((f"  {mark} ", style), (str(entry.get("content", "")), style or "default"))

    def _usage(self, data: dict[str, Any]) -> None:
        text = ", ".join(f"{k} {v}" for k, v in data.items() if v is not None)
        self._line(("· usage ", "bright_black"), (text, "bright_black"))

    def _interaction_requested(self, data: dict[str, Any]) -> None:
        self._line(("⏸ asks ", "bold magenta"), (str(data.get("prompt", "")), "magenta"))

    def _interaction_resolved(self, data: dict[str, Any]) -> None:
        outcome = data.get("outcome", "answered")
        if outcome == "answered":
            answer = data.get("response") or {}
            shown = answer.get("option_id") or answer.get("text") or preview(answer, 60)
            who = f" by {data['responder']}" if data.get("responder") else ""
            self._line(("↳ answered ", "green"), (str(shown), "bold"), (who, "bright_black"))
        else:
            self._line((f"↳ {outcome}", "yellow"))

    def _log(self, data: dict[str, Any]) -> None:
        message = data.get("message") or preview(data, 100)
        self._line(("· log ", "bright_black"), (str(message), "bright_black"))

    def _run_completed(self, data: dict[str, Any]) -> None:
        self._line(("✔ completed", "bold green"))
        if data.get("output"):
            self._line(("  ", ""), Text(str(data["output"])))

    def _run_failed(self, data: dict[str, Any]) -> None:
        error = data.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        self._line(("✘ failed ", "bold red"), (str(message or ""), "red"))

    def _run_cancelled(self, data: dict[str, Any]) -> None:
        reason = data.get("reason")
        self._line(("■ cancelled", "bold yellow"), (f" {reason}" if reason else "", "yellow"))

    def summary(self, run: dict[str, Any]) -> None:
        """The closing line: final status, duration, steps and tokens."""
        steps = run.get("steps") or 0
        bits = []
        if run.get("duration_ms") is not None:
            bits.append(duration(run["duration_ms"]))
        if steps:
            bits.append(f"{steps} step" + ("" if steps == 1 else "s"))
        if run.get("usage"):
            bits.append(f"{tokens(run['usage'])} tokens")
        self._line(
            ("● run ", "bold"),
            (run["run_id"], "bold"),
            " ",
            status_line(run.get("status"), run.get("status_reason")),
            ("".join(" · " + bit for bit in bits), "bright_black"),
        )
