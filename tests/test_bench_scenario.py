"""The scenario bench (bench/scenario.py) runs end to end with tiny numbers, as ``make bench``
runs it: its own dev server and stack, every client, the profiles, the table and the JSON.

No figure is checked against a bound: timings belong to the bench, not to the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ("bare", "tether_poll", "tether_sse")


@pytest.mark.slow
def test_scenario_bench_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "scenario.json"
    argv = ["--runs", "2", "--warmups", "1", "--throughput-runs", "4", "--in-flight", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.scenario", *argv, "--profile", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    result = json.loads(out.read_text())
    for name in CLIENTS:
        latency, throughput = (result["variants"][name][k] for k in ("latency", "throughput"))
        assert latency["runs"] == 2
        assert {"p50", "p95"} <= latency["B_ms"].keys()
        assert throughput["runs"] == 4 and throughput["runs_per_s"] > 0
        assert throughput["peak_rss_mb"] > 0
    tether = result["variants"]["tether_poll"]["throughput"]["peak_rss_mb_per_process"]
    assert tether.keys() == {"temporal", "runner", "worker", "api"}
    floor = result["variants"]["bare"]["throughput"]["peak_rss_mb_per_process"]
    assert floor.keys() == {"temporal", "worker"}
    assert result["ratios"].keys() == {"tether_poll", "tether_sse"}
    for by_process in result["profiles"].values():
        assert by_process.keys() == {"worker", "api"}
        assert all(summary["samples"] > 0 for summary in by_process.values())
    assert (tmp_path / "scenario-profiles" / "tether_sse-worker.txt").exists()

    table = done.stdout
    for label in ("bare Temporal", "Tether polling", "Tether SSE", "D: runs/s", "py-spy"):
        assert label in table
