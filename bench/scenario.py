"""The scenario bench: Tether over HTTP next to bare Temporal, on one dev server, in one run.

Starts a tuned Temporal dev server (tether/devstack/temporal.py), Tether's runner, worker and API
on it with the settings' defaults (as ``make run`` runs them, on a fresh SQLite store), and the
floor's worker (bench/bare_scenario.py). The scenario: agent ``scripted`` emits 3 message events,
asks a ``permission`` question, and after the answer emits 1 event and completes; the client
answers the moment it sees the question (bench/scenario_clients.py). Three clients: bare
Temporal, Tether polling ``GET /v1/runs/{id}`` every 10 ms, Tether following the SSE stream.

- A start -> 202, B start -> pause seen, C answer -> finish seen: p50/p95 of ``--runs``
  sequential runs per client after ``--warmups``, the clients interleaved in blocks of 10;
- D throughput: ``--throughput-runs`` runs, ``--in-flight`` at a time, in runs/s;
- E peak summed RSS of the stack's processes during D (Tether: Temporal server, runner, worker,
  API; the floor: Temporal server and its worker), and the CPU seconds of each during D;
- the ratios Tether / floor.

A D pass stops at its first failed run and reports the failure instead of a rate. With
``--profile``, one more D pass per Tether client runs under ``py-spy record`` on the worker and
the API (not the measured pass: sampling slows them), and the top frames are reported.

Usage: ``python -m bench.scenario [--runs 60] [--throughput-runs 200] [--in-flight 20]
[--profile]``. Prints the table; writes JSON to ``bench/results/scenario-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from temporalio.client import Client

from bench.measure import Profile, Watch, percentiles, summarize, temporal_server_pid, wait_for_line
from bench.scenario_clients import BareTemporal, Sample, TetherPolling, TetherStreaming
from tether.codec import new_key_entry
from tether.devstack.processes import Service, free_port
from tether.devstack.stack import Stack, standalone_stack
from tether.devstack.supervisor import dev_stack_switches
from tether.settings import Settings

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
BLOCK = 10  # sequential runs of one client before the next one's turn
LABELS = {
    "bare": "bare Temporal",
    "tether_poll": "Tether polling",
    "tether_sse": "Tether SSE",
}


class Scenario(Protocol):
    name: str

    async def run_once(self) -> Sample: ...


async def sequential(clients: list[Scenario], runs: int, warmups: int) -> dict[str, list[Sample]]:
    """``runs`` measured runs of each client, one at a time, interleaved in blocks."""
    for client in clients:
        for _ in range(warmups):
            await client.run_once()
    samples: dict[str, list[Sample]] = {c.name: [] for c in clients}
    while any(len(s) < runs for s in samples.values()):
        for client in clients:
            todo = min(BLOCK, runs - len(samples[client.name]))
            for _ in range(todo):
                samples[client.name].append(await client.run_once())
    return samples


async def concurrent(
    client: Scenario, runs: int, in_flight: int
) -> tuple[float, list[Sample], str | None]:
    """``runs`` runs, ``in_flight`` at a time: the seconds they took, their samples, and what
    went wrong if a run failed (the pass then stops: the others are cancelled)."""
    left = iter(range(runs))
    samples: list[Sample] = []

    async def lane() -> None:
        for _ in left:
            samples.append(await client.run_once())

    t0 = time.perf_counter()
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(in_flight, runs)):
                group.create_task(lane())
    except ExceptionGroup as failed:
        return time.perf_counter() - t0, samples, describe(failed.exceptions[0])
    return time.perf_counter() - t0, samples, None


def describe(error: BaseException) -> str:
    """One line for a failed run: the error, and the request it was waiting for if any."""
    text = f"{type(error).__name__}: {error}".rstrip(": ")
    if isinstance(error, httpx.RequestError):
        with contextlib.suppress(RuntimeError):  # no request attached
            text += f" ({error.request.method} {error.request.url.path})"
    return text[:300]


def latency(samples: list[Sample]) -> dict[str, Any]:
    return {
        "runs": len(samples),
        "A_ms": percentiles([s.accepted_ms for s in samples]),
        "B_ms": percentiles([s.paused_ms for s in samples]),
        "C_ms": percentiles([s.finished_ms for s in samples]),
        "answer_404s": sum(s.answer_404s for s in samples),
        "runs_with_answer_404": sum(1 for s in samples if s.answer_404s),
    }


async def throughput(
    client: Scenario, processes: dict[str, int], runs: int, in_flight: int
) -> dict[str, Any]:
    """D, E and CPU per process. A failed run stops the pass: it is reported, not timed."""
    watch = Watch(processes, client=os.getpid())
    watch.start()
    elapsed, samples, failed = await concurrent(client, runs, in_flight)
    usage = await watch.stop(max(len(samples), 1))
    return {
        "runs": runs,
        "in_flight": in_flight,
        "completed": len(samples),
        "failed": failed,
        "elapsed_s": round(elapsed, 2),
        "runs_per_s": None if failed else round(runs / elapsed, 2),
        "answer_404s": sum(s.answer_404s for s in samples),
        **usage,
    }


async def profiled(
    client: Scenario, processes: dict[str, int], runs: int, in_flight: int, out: Path
) -> dict[str, Any]:
    """One more D pass with py-spy on the worker and the API, and psutil's CPU beside it."""
    names = ("worker", "api")
    profiles = {name: Profile(processes[name], out / f"{client.name}-{name}.txt") for name in names}
    await asyncio.sleep(0.5)  # py-spy attaches
    watch = Watch({name: processes[name] for name in names})
    watch.start()
    _, samples, failed = await concurrent(client, runs, in_flight)
    usage = await watch.stop(max(len(samples), 1))
    for profile in profiles.values():
        profile.stop()
    return {
        name: {
            **summarize(p.out, len(samples)),
            "psutil_cpu_ms_per_run": usage["cpu_ms_per_run"][name],
            "failed": failed,
        }
        for name, p in profiles.items()
    }


@asynccontextmanager
async def bare_worker(address: str, workdir: Path):  # type: ignore[no-untyped-def]
    """The floor's worker in its own process, polling its own task queue."""
    queue = f"bare-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "bench.bare_scenario", "--address", address]
    env = {"PYTHONPATH": str(ROOT)}
    service = Service("bare-worker", [*argv, "--task-queue", queue], env, workdir / "bare.log")
    service.start()
    try:
        await wait_for_line(service.log_path, "polling", lambda: service.running)
        assert service.proc is not None
        yield queue, service.proc.pid
    finally:
        service.stop()


def stack_settings() -> dict[str, str]:
    """The defaults, plus what ``tether dev`` adds (``make run``): a payload key, so payloads
    are encrypted, and the API's docs, metrics and open codec. The worker's metrics port is a
    free one, so the bench runs beside ``make run`` (or another bench) on this machine."""
    return {
        **dev_stack_switches(Settings()),
        "TETHER_PAYLOAD_KEYS": new_key_entry("bench"),
        "TETHER_WORKER_METRICS_PORT": str(free_port()),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    load_before = os.getloadavg()
    async with standalone_stack(short_bounds=False, **stack_settings()) as (env, stack):
        address = env.client.service_client.config.target_host
        server = temporal_server_pid()
        workdir = Path(stack.env["TETHER_DATA_DIR"])
        async with bare_worker(address, workdir) as (queue, bare_pid), stack.client() as http:
            bare = BareTemporal(await Client.connect(address), queue)
            poll, sse = TetherPolling(http), TetherStreaming(http)
            tether_procs = tether_processes(stack, server)
            floor_procs = {"temporal": server, "worker": bare_pid}

            samples = await sequential([bare, poll, sse], args.runs, args.warmups)
            variants: dict[str, dict[str, Any]] = {
                name: {"latency": latency(s)} for name, s in samples.items()
            }
            profiles: dict[str, Any] = {}
            for client, procs in ((bare, floor_procs), (poll, tether_procs), (sse, tether_procs)):
                thr = await throughput(client, procs, args.throughput_runs, args.in_flight)
                variants[client.name]["throughput"] = thr
                # Profiled right after its own pass, before another client's failure (if one
                # fails) can leave the stack busy; a failed pass would only fail again.
                if args.profile and client is not bare and not thr["failed"]:
                    profiles[client.name] = await profiled(
                        client, procs, args.throughput_runs, args.in_flight, args.profile_dir
                    )
    return {
        "when": datetime.now(UTC).isoformat(),
        # Other work on the machine moves every figure: the load averages say how much there was.
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "runs": args.runs,
            "warmups": args.warmups,
            "throughput_runs": args.throughput_runs,
            "in_flight": args.in_flight,
        },
        "variants": variants,
        "ratios": {
            name: ratios(variants[name], variants["bare"]) for name in ("tether_poll", "tether_sse")
        },
        "profiles": profiles,
    }


def tether_processes(stack: Stack, server: int) -> dict[str, int]:
    pids = {"temporal": server}
    for service in (stack.runner, stack.worker, stack.api):
        assert service.proc is not None
        pids[service.name] = service.proc.pid
    return pids


def ratios(tether: dict[str, Any], floor: dict[str, Any]) -> dict[str, float | None]:
    def r(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    lt, lf = tether["latency"], floor["latency"]
    dt, df = tether["throughput"], floor["throughput"]
    return {
        "A_p50": r(lt["A_ms"]["p50"], lf["A_ms"]["p50"]),
        "B_p50": r(lt["B_ms"]["p50"], lf["B_ms"]["p50"]),
        "C_p50": r(lt["C_ms"]["p50"], lf["C_ms"]["p50"]),
        "D": r(dt["runs_per_s"], df["runs_per_s"]),
        "E": r(dt["peak_rss_mb"], df["peak_rss_mb"]),
        "cpu_per_run": None
        if dt["failed"] or df["failed"]
        else r(dt["stack_cpu_ms_per_run"], df["stack_cpu_ms_per_run"]),
    }


def table(result: dict[str, Any]) -> str:
    """The issue's table, the ratios, CPU per process and the refused answers, as Markdown."""
    variants, settings = result["variants"], result["settings"]

    def pair(d: dict[str, float]) -> str:
        return f"{d['p50']:.1f} / {d['p95']:.1f} ms"

    d_head = f"D: runs/s ({settings['throughput_runs']} runs, {settings['in_flight']} in flight)"
    lines = [
        f"| p50 / p95 | A: start → 202 | B: start → pause seen | C: answer → finish seen "
        f"| {d_head} | E: peak RSS of the stack | stack CPU per run |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in LABELS.items():
        lat, thr = variants[name]["latency"], variants[name]["throughput"]
        if thr["failed"]:
            d, cpu = f"failed after {thr['completed']} runs: {thr['failed']}", "-"
        else:
            d, cpu = f"{thr['runs_per_s']:.1f}", f"{thr['stack_cpu_ms_per_run']:.0f} ms"
        lines.append(
            f"| {label} | {pair(lat['A_ms'])} | {pair(lat['B_ms'])} | {pair(lat['C_ms'])} "
            f"| {d} | {thr['peak_rss_mb']:.0f} MB | {cpu} |"
        )

    def x(value: float | None) -> str:
        return "-" if value is None else f"{value}x"

    for name, ratio in result["ratios"].items():
        cells = [ratio[k] for k in ("A_p50", "B_p50", "C_p50", "D", "E", "cpu_per_run")]
        lines.append(f"| {LABELS[name]} / floor (p50) | " + " | ".join(map(x, cells)) + " |")
    names = ["temporal", "runner", "worker", "api", "client"]
    lines += [
        "",
        "| CPU ms per run during D | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for name, label in LABELS.items():
        thr = variants[name]["throughput"]
        per_run = {} if thr["failed"] else thr["cpu_ms_per_run"]
        cells = [f"{per_run[n]:.1f}" if n in per_run else "-" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("(client: the bench process driving the runs, not part of the stack)")
    machine = result["machine"]
    lines.append(
        f"load average (1, 5, 15 min) before: {machine['loadavg_before']}, "
        f"after: {machine['loadavg_after']}, on {machine['cpus']} CPUs"
    )
    for name in ("tether_poll", "tether_sse"):
        lat, thr = variants[name]["latency"], variants[name]["throughput"]
        lines.append(
            f"{LABELS[name]}: answers refused 404 (the interaction not yet recorded): "
            f"{lat['answer_404s']} in {lat['runs_with_answer_404']} of {lat['runs']} sequential "
            f"runs, {thr['answer_404s']} during D"
        )
    for variant, by_process in result["profiles"].items():
        for process, summary in by_process.items():
            lines += [
                "",
                f"py-spy, {LABELS[variant]} under D, {process}: {summary['cpu_ms_per_run']} ms "
                f"per run holding the GIL, of {summary['psutil_cpu_ms_per_run']} ms CPU per run "
                "(psutil, all threads) in that pass",
            ]
            lines.append("| own time, ms/run | frame |")
            lines.append("|---|---|")
            lines += [f"| {t['ms_per_run']} | `{t['frame']}` |" for t in summary["top_self"]]
            lines.append("| under it, ms/run | frame |")
            lines += [f"| {t['ms_per_run']} | `{t['frame']}` |" for t in summary["top_total"]]
            lines.append("| under it, Tether's code, ms/run | frame |")
            lines += [f"| {t['ms_per_run']} | `{t['frame']}` |" for t in summary["top_project"]]
            lines.append("| own time by folder, ms/run | folder |")
            lines += [f"| {t['ms_per_run']} | {t['folder']} |" for t in summary["by_folder"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="sequential runs per client")
    parser.add_argument("--warmups", type=int, default=5, help="unmeasured runs per client first")
    parser.add_argument("--throughput-runs", type=int, default=200)
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument(
        "--profile", action="store_true", help="profile the worker and the API (py-spy)"
    )
    parser.add_argument("--out", type=Path, help="the JSON file (default: bench/results/)")
    args = parser.parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out = args.out or RESULTS / f"scenario-{stamp}.json"
    args.profile_dir = args.out.with_suffix("").with_name(args.out.stem + "-profiles")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    outcome = asyncio.run(main(arguments))
    print(table(outcome))
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(outcome, indent=2))
    print(f"\nwritten to {arguments.out}")
