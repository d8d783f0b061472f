"""What the scenario bench measures besides latency: memory and CPU of the stack's processes
(psutil), and where their Python code spends its CPU (py-spy)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

SAMPLE_S = 0.1  # how often the RSS of the stack is summed while runs are under way


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1)}


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_s(proc: psutil.Process, *, tree: bool = True) -> float:
    total = 0.0
    for p in _tree(proc) if tree else [proc]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def _rss(proc: psutil.Process) -> int:
    total = 0
    for p in _tree(proc):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total


class Watch:
    """CPU seconds of each named process (with its children) between ``start`` and ``stop``,
    and the peak of their summed RSS, sampled every ``SAMPLE_S`` in between.

    ``client`` is watched for CPU only, without its children (they are the stack): the process
    driving the runs is not part of the stack.
    """

    def __init__(self, processes: dict[str, int], client: int | None = None) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in processes.items()}
        self.client = psutil.Process(client) if client is not None else None
        self._cpu0: dict[str, float] = {}
        self._peak_total = 0
        self._peaks: dict[str, int] = {}
        self._sampler: asyncio.Task[None] | None = None

    def _cpu(self) -> dict[str, float]:
        cpu = {name: _cpu_s(p) for name, p in self.processes.items()}
        if self.client is not None:
            cpu["client"] = _cpu_s(self.client, tree=False)
        return cpu

    def start(self) -> None:
        self._cpu0 = self._cpu()
        self._sample()
        self._sampler = asyncio.create_task(self._sample_loop())

    def _sample(self) -> None:
        sizes = {name: _rss(p) for name, p in self.processes.items()}
        self._peak_total = max(self._peak_total, sum(sizes.values()))
        for name, size in sizes.items():
            self._peaks[name] = max(self._peaks.get(name, 0), size)

    async def _sample_loop(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_S)
            self._sample()

    async def stop(self, runs: int) -> dict[str, Any]:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        self._sample()
        cpu = {name: seconds - self._cpu0[name] for name, seconds in self._cpu().items()}
        stack_cpu = sum(v for k, v in cpu.items() if k != "client")
        return {
            "peak_rss_mb": round(self._peak_total / 2**20, 1),
            "peak_rss_mb_per_process": {k: round(v / 2**20, 1) for k, v in self._peaks.items()},
            "cpu_s": {k: round(v, 2) for k, v in cpu.items()},
            "cpu_ms_per_run": {k: round(1000 * v / runs, 1) for k, v in cpu.items()},
            "stack_cpu_ms_per_run": round(1000 * stack_cpu / runs, 1),
        }


def temporal_server_pid() -> int:
    """The dev server started by ``start_temporal`` is a child of this process."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.NoSuchProcess):
            if child.name() == "temporal" or "start-dev" in child.cmdline():
                return child.pid
    raise RuntimeError("no temporal dev server among this process's children")


# --- profiles ---------------------------------------------------------------------------------

RATE_HZ = 100
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


class Profile:
    """``py-spy record`` attached to a running process until ``stop``; samples as collapsed
    stacks (one line per distinct stack: ``frame;frame;... count``).

    ``--gil``: only the thread holding the GIL is sampled. On this machine py-spy's own test of
    whether a thread is idle is unreliable (threads blocked in ``epoll`` or a lock still showed
    up in 5-10% of the samples, more for threads that wake often), and in these processes the
    GIL is what bounds the Python work anyway. So samples / rate is seconds of Python running;
    C code that releases the GIL (SQLite executing a statement) and the Temporal core's own
    threads are not in it. Non-blocking: the process is not paused to be read.
    """

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                *(py_spy(), "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--function"),
                *("--gil", "--nonblocking"),
                *("--format", "raw", "--output", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self) -> None:
        # py-spy writes its file when interrupted.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        if not self.out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')}")


# Frames that are under most samples and say nothing: the event loop, thread and process entry
# points (shortened frames, see ``_short``).
_PLUMBING = re.compile(
    r"\((asyncio/|threading\.py|selectors\.py|concurrent/futures/|<frozen runpy>|click/"
    r"|uvicorn/(main|server|__main__|_compat)\.py|worker\.py\))"
)


# Frames of Tether's own code (route handlers, activities, store functions).
_OURS = re.compile(r"\((api|store|activities|workflows|clients|runner|tether)/")


def _short(frame: str) -> str:
    """``func (path:line)`` -> ``func (module path)``, the path from the package on."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = re.sub(r"^.*?/(?=(api|store|activities|workflows|clients|runner|tether)/)", "", path)
    return f"{match['func']} ({path})"


def _folder(short_frame: str) -> str:
    """The folder of a shortened frame's module (``sqlalchemy/orm``, ``api``), or the module
    itself when it is not in one (``typing.py``, ``worker.py``)."""
    path = short_frame[short_frame.rfind(" (") + 2 : -1]
    folder, _, name = path.rpartition("/")
    return folder or name


def summarize(collapsed: Path, runs: int, top: int = 10) -> dict[str, Any]:
    """Top functions by own samples, by samples under them, Tether's own functions by samples
    under them, and own samples per folder; each in ms per run (samples / rate / runs)."""
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        packages[_folder(frames[-1])] += count
        for frame in set(frames):
            under[frame] += count

    def ms(count: int) -> float:
        return round(1000 * count / RATE_HZ / max(runs, 1), 2)

    telling = [(f, n) for f, n in under.most_common() if not _PLUMBING.search(f)]
    ours = [(f, n) for f, n in under.most_common() if _OURS.search(f)]
    return {
        "samples": total,
        "cpu_ms_per_run": ms(total),
        "top_self": [{"frame": f, "ms_per_run": ms(n)} for f, n in own.most_common(top)],
        "top_total": [{"frame": f, "ms_per_run": ms(n)} for f, n in telling[:top]],
        "top_project": [{"frame": f, "ms_per_run": ms(n)} for f, n in ours[:top]],
        "by_folder": [{"folder": p, "ms_per_run": ms(n)} for p, n in packages.most_common(top)],
    }


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


async def wait_for_line(path: Path, text: str, alive: Any, timeout: float = 30.0) -> None:
    """Until ``text`` appears in the log at ``path`` (``alive()`` false: the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = await asyncio.to_thread(_read, path)
        if text in log:
            return
        if not alive():
            raise RuntimeError(f"process exited:\n{log[-2000:]}")
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{text!r} not in {path} after {timeout}s")
