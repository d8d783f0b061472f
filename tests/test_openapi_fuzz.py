"""Schemathesis over the live OpenAPI description, authenticated as an admin: every phase
(examples, coverage, fuzzing, stateful links), and no answer may be a 5xx.

The API runs on the shared test stack (real Temporal, runner, worker, SQLite store), so a
generated request that gets through validation really starts, answers or cancels something.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest

from tether.devstack.stack import Stack

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


@pytest.mark.skipif(not Path(SCHEMATHESIS).exists(), reason="schemathesis is not installed")
async def test_no_generated_request_gets_a_server_error(stack: Stack, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        SCHEMATHESIS,
        "--no-color",
        "run",
        f"{stack.api_url}/openapi.json",
        "--header",
        f"Authorization: Bearer {stack.api_key}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "15",
        "--seed",
        "20261201",
        "--request-timeout",
        "20",
        "--report",
        "json",
        "--report-json-path",
        str(report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=600)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-6000:]
    summary = json.loads(report.read_text()) if report.exists() else {}
    print(text[-2500:], json.dumps(summary)[:2000])
