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


def _cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in _tree(proc):
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

    ``client`` is watched for CPU only: the process driving the runs is not part of the stack.
    """

    def __init__(self, processes: dict[str, int], client: int | None = None) -> None:
        self.processes = {name: psutil.Process(pid) for name, pid in processes.items()}
        self.client = psutil.Process(client) if client is not None else None
        self._cpu0: dict[str, float] = {}
        self._peak_total = 0
        self._peaks: dict[str, int] = {}
        self._sampler: asyncio.Task[None] | None = None

    def _all(self) -> dict[str, psutil.Process]:
        return {**self.processes, **({"client": self.client} if self.client else {})}

    def start(self) -> None:
        self._cpu0 = {name: _cpu_s(p) for name, p in self._all().items()}
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
        cpu = {name: _cpu_s(p) - self._cpu0[name] for name, p in self._all().items()}
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

    Non-blocking: py-spy does not pause the process to read it, which perturbs it less and,
    on this machine, is the mode that leaves threads blocked in a wait out of the samples
    (the blocking mode counted an idle thread in ~8% of its samples). A sample is then one
    thread on CPU, so samples / rate is CPU seconds of Python threads (C code they call, such
    as SQLite's, included; the Temporal core's own threads not)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        out.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                *(py_spy(), "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--function"),
                "--nonblocking",
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


def _package(frame: str) -> str:
    match = _FRAME.match(frame)
    path = match["file"] if match else frame
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/lib/python3" in path:
        return "stdlib:" + path.rsplit("/lib/python3", 1)[1].split("/")[1].removesuffix(".py")
    if path.endswith("worker.py"):
        return "worker.py"
    found = re.search(r"/(api|store|activities|workflows|clients|runner|tether)/", path)
    return found[1] if found else path


def summarize(collapsed: Path, runs: int, top: int = 10) -> dict[str, Any]:
    """Top functions by own samples and by samples under them, and own samples per package;
    each in CPU ms per run (samples / rate / runs)."""
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
        packages[_package(stack.split(";")[-1])] += count
        for frame in set(frames):
            under[frame] += count

    def ms(count: int) -> float:
        return round(1000 * count / RATE_HZ / max(runs, 1), 2)

    # Frames under nearly every sample (the event loop, thread entry points) say nothing.
    telling = [(f, n) for f, n in under.most_common() if n < 0.9 * total]
    return {
        "samples": total,
        "cpu_ms_per_run": ms(total),
        "top_self": [{"frame": f, "ms_per_run": ms(n)} for f, n in own.most_common(top)],
        "top_total": [{"frame": f, "ms_per_run": ms(n)} for f, n in telling[:top]],
        "by_package": [{"package": p, "ms_per_run": ms(n)} for p, n in packages.most_common(top)],
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
