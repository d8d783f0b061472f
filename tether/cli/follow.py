"""Following a run live: print its transcript from the SSE stream and, when it waits for a human,
ask inline and send the answer. Used by ``tether run --follow`` and ``tether runs follow``."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.status import Status
from rich.text import Text

from tether.cli.api import Api, CliError, SseMessage
from tether.cli.prompt import Stdin, ask, can_pick
from tether.cli.transcript import TranscriptPrinter

TERMINAL_EVENTS = {"run.completed", "run.failed", "run.cancelled"}

IDLE_S = 1.0  # quiet this long, a spinner shows the run is still going

EXIT_OK, EXIT_RUN_NOT_COMPLETED, EXIT_NO_ANSWER, EXIT_DETACHED = 0, 1, 3, 130


@dataclass
class _Unanswered:
    """The human had no answer here (stdin ended, or they chose to answer later)."""

    interaction_id: str
    end_of_input: bool


@dataclass
class _Failed:
    error: BaseException


class RunFollower:
    """Streams one run's transcript and answers its interactions from this terminal."""

    def __init__(
        self,
        api: Api,
        run_id: str,
        *,
        out: Console,
        err: Console,
        json_lines: bool = False,
        answer: bool = True,
        responder: str | None = None,
        stdin: Stdin | None = None,
    ) -> None:
        self.api, self.run_id = api, run_id
        self.out, self.err = out, err
        self.json_lines = json_lines
        self.answer, self.responder = answer, responder
        # Questions go where a human looks: stdout, unless stdout carries JSON lines.
        self.asker_console = err if json_lines else out
        self.stdin = stdin if stdin is not None else (Stdin() if answer else None)
        self.printer = TranscriptPrinter(out)
        self.queue: asyncio.Queue[SseMessage | _Unanswered | _Failed] = asyncio.Queue()
        self.spinner: Status | None = None
        self.waiting = False  # the run asked and has no answer yet

    async def run(self, after: int = 0) -> int:
        """Follow until the run ends; the exit code (0 only if the run completed)."""
        pump = asyncio.create_task(self._pump(after))
        asking: tuple[str, asyncio.Task[None]] | None = None
        try:
            while True:
                item = await self._next(idle_hint=asking is None or asking[1].done())
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _Unanswered):
                    self._unanswered_hint(item)
                    if item.end_of_input:
                        return EXIT_NO_ANSWER
                    continue
                if item.event == "end":
                    return await self._finish(item.data)
                event = item.data
                self._show(item)
                kind, data = event.get("type"), event.get("data") or {}
                if kind == "interaction.requested":
                    self.waiting = True
                    if self.answer:
                        if asking:
                            await self._withdraw(asking[1])
                        interaction_id = data["interaction_id"]
                        asking = (interaction_id, asyncio.create_task(self._ask(interaction_id)))
                    continue
                if kind == "interaction.resolved":
                    self.waiting = False
                if asking and (
                    kind in TERMINAL_EVENTS
                    or (kind == "interaction.resolved" and data.get("interaction_id") == asking[0])
                ):
                    await self._withdraw(asking[1])
                    asking = None
        except asyncio.CancelledError:
            self.printer.end_line()
            self.err.print(
                Text.assemble(
                    ("detached: ", "bold"),
                    f"run {self.run_id} keeps going. Follow it again with ",
                    (f"tether runs follow {self.run_id}", "bold"),
                ),
                soft_wrap=True,
            )
            raise
        finally:
            self._stop_spinner()
            pump.cancel()
            if asking:
                asking[1].cancel()
            await asyncio.gather(pump, *([asking[1]] if asking else []), return_exceptions=True)

    async def _next(self, *, idle_hint: bool) -> SseMessage | _Unanswered | _Failed:
        """The next thing to handle. While nothing happens for a moment, a spinner says the
        run is working (or waiting for an answer), on a terminal, between whole lines."""
        if self.spinner is None and idle_hint and self._can_spin():
            try:
                return await asyncio.wait_for(self.queue.get(), IDLE_S)
            except TimeoutError:
                what = "waiting for an answer" if self.waiting else "working"
                self.spinner = self.out.status(Text(f"{what} …", "bright_black"), spinner="dots")
                self.spinner.start()
        item = await self.queue.get()
        self._stop_spinner()
        return item

    def _can_spin(self) -> bool:
        return self.out.is_terminal and not self.json_lines and not self.printer.mid_line

    def _stop_spinner(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None

    async def _pump(self, after: int) -> None:
        try:
            async for message in self.api.stream(self.run_id, after, self._reconnecting):
                self.queue.put_nowait(message)
        except Exception as err:
            self.queue.put_nowait(_Failed(err))

    def _reconnecting(self, reason: str | None, last_seq: int) -> None:
        self.printer.end_line()
        if reason is None:
            message = f"reconnected; resumed after event {last_seq}"
        else:
            message = f"connection lost ({reason}); reconnecting to resume after event {last_seq} …"
        self.err.print(Text(message, "yellow"), soft_wrap=True)

    def _show(self, message: SseMessage) -> None:
        if self.json_lines:
            line = {"id": message.id, "event": message.event, "data": message.data}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        else:
            self.printer.event(message.data)

    async def _finish(self, end: dict[str, Any]) -> int:
        if self.json_lines:
            self._show(SseMessage(None, "end", end))
        else:
            self.printer.summary(await self._final_run(end))
        return EXIT_OK if end.get("status") == "completed" else EXIT_RUN_NOT_COMPLETED

    async def _final_run(self, end: dict[str, Any]) -> dict[str, Any]:
        """The ended run for the summary line; the ``end`` event's fields if the API is
        briefly unreachable."""
        for attempt in range(5):
            try:
                return dict(await self.api.get(f"/v1/runs/{self.run_id}"))
            except CliError as err:
                if err.code != "unreachable":
                    break
                await asyncio.sleep(0.2 * 2**attempt)
        return {"run_id": self.run_id, **end}

    async def _withdraw(self, task: asyncio.Task[None]) -> None:
        """The question was settled without this terminal (or the run ended): stop asking."""
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _ask(self, interaction_id: str) -> None:
        try:
            interaction = await self._pending(interaction_id)
            if interaction is None:
                return
            await self._answer(interaction)
        except asyncio.CancelledError:
            raise
        except Exception as err:
            self.queue.put_nowait(_Failed(err))

    async def _pending(self, interaction_id: str) -> dict[str, Any] | None:
        """The interaction once the run recorded it as pending (the transcript event comes
        first); None if it is already settled (a replayed transcript)."""
        while True:
            try:
                interaction = await self.api.get(f"/v1/interactions/{interaction_id}")
            except CliError as err:
                if err.status != 404 and err.code != "unreachable":
                    raise
            else:
                return interaction if interaction["status"] == "pending" else None
            await asyncio.sleep(0.2)

    async def _answer(self, interaction: dict[str, Any]) -> None:
        assert self.stdin is not None
        picker = can_pick(self.stdin, self.asker_console)
        self.printer.end_line()
        while True:
            response = await ask(self.asker_console, self.stdin, interaction, picker=picker)
            if response is None:
                self.queue.put_nowait(
                    _Unanswered(interaction["interaction_id"], end_of_input=self._stdin_ended())
                )
                return
            try:
                await self.api.post(
                    f"/v1/interactions/{interaction['interaction_id']}/respond",
                    {"response": response, "responder": self.responder},
                )
                return
            except CliError as err:
                if err.status == 409:  # answered elsewhere or expired; the stream will say
                    self.asker_console.print(Text(err.message, "yellow"))
                    return
                if err.status != 422:
                    raise
                self.asker_console.print(Text(err.message, "red"))

    def _stdin_ended(self) -> bool:
        return self.stdin is not None and self.stdin.at_eof

    def _unanswered_hint(self, item: _Unanswered) -> None:
        why = "no answer on stdin" if item.end_of_input else "answer later"
        self.err.print(
            Text.assemble(
                (f"{why}: ", "bold"),
                f"run {self.run_id} waits for interaction {item.interaction_id}. Answer with ",
                (f"tether interactions respond {item.interaction_id} <answer>", "bold"),
            ),
            soft_wrap=True,
        )
