"""Asking the human: a picker (arrow keys or a number) for permissions on a terminal, a text line
for input, and plain lines from stdin when it is piped (a number, an option ID or text).

Stdin is read without blocking the event loop, so a question can be withdrawn (answered
elsewhere, expired) while it is on screen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from tether.cli.render import interaction_card, option_style

try:
    import termios
    import tty
except ImportError:  # not POSIX: no picker, lines only
    termios = None  # type: ignore[assignment]
    tty = None  # type: ignore[assignment]


POINTER = "\u276f "  # the picker's cursor
PROMPT = "\u203a "  # before a typed answer


class Stdin:
    """Async lines (and, on a terminal, key presses) from file descriptor 0."""

    def __init__(self, fd: int | None = None) -> None:
        self.fd = sys.stdin.fileno() if fd is None else fd
        self.is_tty = os.isatty(self.fd)
        self._buffer = b""
        self._eof = False
        self._keys: list[str] = []

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        try:
            loop.add_reader(self.fd, readable)
        except (OSError, ValueError, NotImplementedError):
            # A regular file (``< answers.txt``) cannot be polled, and never blocks either.
            return os.read(self.fd, 4096)
        try:
            await ready
        finally:
            loop.remove_reader(self.fd)
        try:
            return os.read(self.fd, 4096)
        except BlockingIOError:
            return await self._read()

    @property
    def at_eof(self) -> bool:
        return self._eof and not self._buffer

    async def readline(self) -> str | None:
        """The next line without its newline; None at end of input."""
        while b"\n" not in self._buffer and not self._eof:
            chunk = await self._read()
            self._eof = not chunk
            self._buffer += chunk
        if not self._buffer:
            return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode(errors="replace").rstrip("\r")

    async def key(self) -> str:
        """One key press (terminal in cbreak mode): ``up``, ``down``, ``enter``, ``esc``,
        ``eof`` or the character typed. Keys that arrive together are returned one by one."""
        while not self._keys:
            data = await self._read()
            self._keys.extend(split_keys(data) if data else ["eof"])
        return self._keys.pop(0)

    @contextlib.contextmanager
    def cbreak(self) -> Iterator[None]:
        """Key presses arrive one by one, unechoed; Ctrl-C still interrupts."""
        saved = termios.tcgetattr(self.fd)
        try:
            tty.setcbreak(self.fd)
            yield
        finally:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, saved)


_SEQUENCES = {
    "\x1b[A": "up",
    "\x1bOA": "up",
    "\x1b[B": "down",
    "\x1bOB": "down",
    "\r": "enter",
    "\n": "enter",
    "\x04": "eof",  # Ctrl-D
}


def split_keys(data: bytes) -> list[str]:
    """Key names from the bytes a terminal sent; unknown escape sequences are dropped."""
    text, keys, i = data.decode(errors="replace"), [], 0
    while i < len(text):
        for sequence, name in _SEQUENCES.items():
            if text.startswith(sequence, i):
                keys.append(name)
                i += len(sequence)
                break
        else:
            if text[i] == "\x1b":
                if text.startswith(("\x1b[", "\x1bO"), i):  # another key's sequence: skip it
                    j = i + 2
                    while j < len(text) and not (text[j].isalpha() or text[j] == "~"):
                        j += 1
                    i = j + 1
                    continue
                keys.append("esc")
            else:
                keys.append(text[i])
            i += 1
    return keys


def can_pick(stdin: Stdin, console: Console) -> bool:
    """The arrow-key picker needs a terminal on both sides."""
    return termios is not None and stdin.is_tty and console.is_terminal


def parse_answer(interaction: dict[str, Any], text: str) -> dict[str, Any]:
    """The API ``response`` for an answer typed by a human; ``ValueError`` says what to type.

    Permission: an option's number (from 1), ID or name. Input: the text, or a JSON object when
    the interaction asked for one (it has a ``response_schema``).
    """
    text = text.strip()
    if interaction.get("kind") == "permission":
        options = interaction.get("options") or []
        ids = [o["option_id"] for o in options]
        if text.isascii() and text.isdigit() and 1 <= int(text) <= len(options):
            return {"option_id": ids[int(text) - 1]}
        for option in options:
            if text.lower() in (option["option_id"].lower(), str(option.get("name", "")).lower()):
                return {"option_id": option["option_id"]}
        raise ValueError(f"answer with a number from 1 to {len(options)} or one of {ids}")
    if not text:
        raise ValueError("the answer is empty")
    if interaction.get("response_schema") and text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError as err:
            raise ValueError(f"not valid JSON: {err}") from err
        if isinstance(value, dict):
            return value
    return {"text": text}


async def pick_option(console: Console, stdin: Stdin, options: list[dict[str, Any]]) -> int | None:
    """Arrow keys (or j/k) and Enter, or a number: the chosen index; None if skipped (Esc/q)."""
    index = 0

    def view() -> Group:
        lines = []
        for i, option in enumerate(options):
            name = option.get("name") or option["option_id"]
            style = option_style(option)
            if i == index:
                lines.append(
                    Text.assemble(
                        (POINTER, "bold magenta"),
                        (f"{i + 1}. {name}", f"bold reverse {style}".strip()),
                        (f"  ({option['option_id']})", "bright_black"),
                    )
                )
            else:
                lines.append(Text.assemble(f"  {i + 1}. ", (name, style)))
        lines.append(Text("↑/↓ move · Enter choose · 1-9 pick · Esc answer later", "bright_black"))
        return Group(*lines)

    with stdin.cbreak(), Live(view(), console=console, auto_refresh=False, transient=True) as live:
        while True:
            key = await stdin.key()
            if key in ("up", "k"):
                index = (index - 1) % len(options)
            elif key in ("down", "j", "\t"):
                index = (index + 1) % len(options)
            elif key == "enter":
                return index
            elif key.isascii() and key.isdigit() and 1 <= int(key) <= len(options):
                return int(key) - 1
            elif key in ("esc", "q", "eof"):
                return None
            live.update(view(), refresh=True)


async def ask(
    console: Console, stdin: Stdin, interaction: dict[str, Any], *, picker: bool
) -> dict[str, Any] | None:
    """Show the interaction and read an answer; None if there is none (end of input, or the
    human chose to answer later)."""
    options = interaction.get("options") or []
    picker = picker and bool(options) and interaction.get("kind") == "permission"
    console.print(interaction_card(interaction, numbered=not picker))
    if picker:
        chosen = await pick_option(console, stdin, options)
        if chosen is None:
            return None
        option = options[chosen]
        console.print(
            Text.assemble(
                (PROMPT, "bold magenta"), (option.get("name") or option["option_id"], "bold")
            )
        )
        return {"option_id": option["option_id"]}
    hint = f"1-{len(options)} or an option ID" if options else "your answer"
    while True:
        console.print(
            Text.assemble((PROMPT, "bold magenta"), (f"{hint}: ", "bright_black")), end=""
        )
        line = await stdin.readline()
        if line is None:
            console.print()
            return None
        if not stdin.is_tty:
            console.print(line, highlight=False)  # piped: show what was read
        try:
            return parse_answer(interaction, line)
        except ValueError as err:
            console.print(Text(str(err), "red"))
