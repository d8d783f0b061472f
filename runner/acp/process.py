"""An ACP agent's OS process: stdio pipes, a bounded stderr tail, and a stop that escalates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from runner.acp.config import AcpAgentConfig
from runner.agents.base import AgentError

log = logging.getLogger(__name__)

# The tail of stderr a run.failed event carries; the process keeps more for the runner's log.
ERROR_TAIL_BYTES = 8 * 1024


class AgentStartError(AgentError):
    """The agent's command could not be started (not found, not executable, bad cwd)."""


class AgentProcess:
    """One running agent process.

    Its stderr is read continuously into a buffer holding only the last ``stderr_limit`` bytes:
    an agent that writes a lot to stderr never blocks on a full pipe, and memory stays bounded.
    The process leads its own process group, so a stop reaches the helpers it spawned too
    (``npx`` and the like), and a Ctrl-C meant for the runner does not kill it mid-turn.
    """

    _background: set[asyncio.Task[None]] = set()  # stops still under way, kept referenced

    def __init__(self, proc: asyncio.subprocess.Process, stderr_limit: int) -> None:
        self.proc = proc
        self._stderr = bytearray()
        self._stderr_limit = max(stderr_limit, ERROR_TAIL_BYTES)
        self._drain = asyncio.create_task(self._drain_stderr(), name=f"acp-stderr:{proc.pid}")

    @classmethod
    async def start(cls, config: AcpAgentConfig, stderr_limit: int) -> AgentProcess:
        """Spawn the agent with its configured command, cwd and (trimmed) environment."""
        try:
            proc = await asyncio.create_subprocess_exec(
                *config.command,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=config.child_environment(),
                cwd=config.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            raise AgentStartError(
                f"cannot start ACP agent {config.name!r}: {exc}",
                {"command": config.command},
            ) from None
        return cls(proc, stderr_limit)

    @property
    def stdin(self) -> asyncio.StreamWriter:
        assert self.proc.stdin is not None
        return self.proc.stdin

    @property
    def stdout(self) -> asyncio.StreamReader:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def stderr_tail(self, limit: int = ERROR_TAIL_BYTES) -> str:
        """The last ``limit`` bytes the agent wrote to stderr, decoded leniently."""
        return bytes(self._stderr[-limit:]).decode(errors="replace")

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the process has exited and its stderr is read; None if it is
        still running after ``timeout``."""
        if not await self._wait(timeout):
            return None
        # The stderr pipe reaches EOF right after the exit, unless a child process holds it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._drain), 1.0)
        return self.proc.returncode

    async def stop(self, eof_grace: float, kill_grace: float) -> None:
        """Close stdin (an ACP agent exits at EOF); SIGTERM after ``eof_grace``; SIGKILL after
        ``kill_grace`` more. Cancelled midway, it kills at once: there is no time to be polite.
        """
        try:
            self._close_stdin()
            if not await self._wait(eof_grace):
                self._signal(signal.SIGTERM)
                if not await self._wait(kill_grace):
                    log.warning("ACP agent pid %s ignored SIGTERM; killing it", self.proc.pid)
                    self._signal(signal.SIGKILL)
                    await self.proc.wait()
        except asyncio.CancelledError:
            self._signal(signal.SIGKILL)
            raise
        finally:
            if not self._drain.done():
                self._drain.cancel()

    def stop_in_background(self, eof_grace: float, kill_grace: float) -> None:
        """``stop`` without waiting: a finished turn should not wait for the process to exit."""
        task = asyncio.create_task(self.stop(eof_grace, kill_grace), name="acp-stop")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _wait(self, timeout: float) -> bool:
        if self.proc.returncode is not None:
            return True
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _close_stdin(self) -> None:
        with contextlib.suppress(Exception):
            self.stdin.close()

    def _signal(self, signum: signal.Signals) -> None:
        if self.proc.returncode is not None:
            return
        try:
            os.killpg(self.proc.pid, signum)  # the group: the agent and whatever it spawned
        except (ProcessLookupError, PermissionError, AttributeError):  # AttributeError: Windows
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signum)

    async def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        with contextlib.suppress(ConnectionError):
            while chunk := await stream.read(64 * 1024):
                self._stderr += chunk
                if len(self._stderr) > self._stderr_limit:
                    del self._stderr[: len(self._stderr) - self._stderr_limit]
