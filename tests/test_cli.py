"""The ``tether`` CLI, spawned as a user would run it, against the real stack over HTTP.

Answers are piped to its stdin, as a script (or a human at a pipe) would give them.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from store.db import create_engine
from store.models import Project
from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.processes import Service, free_port, wait_http
from tether.devstack.stack import Stack
from tether.devstack.supervisor import ensure_dev_key
from tether.settings import Settings

FINAL = {"completed", "failed", "cancelled", "timed_out"}


@dataclass
class Done:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """One ``tether`` process with pipes on stdin, stdout and stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.out = ""

    @classmethod
    async def start(cls, stack: Stack, *args: str, api_url: str | None = None) -> Cli:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
        # The answers are recorded under the key's name (stack-admin), not $TETHER_RESPONDER.
        env.update(COLUMNS="200", TETHER_RESPONDER="cli-test", TETHER_API_KEY=stack.api_key)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tether",
            "--api",
            api_url or stack.api_url,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        return cls(proc)

    async def read_until(self, marker: str, timeout: float = 20.0) -> str:
        """Stdout so far, once it shows ``marker`` (a prompt ends without a newline)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while marker not in self.out:
                chunk = await self.proc.stdout.read(4096)
                if not chunk:
                    raise AssertionError(f"stdout ended before {marker!r}:\n{self.out}")
                self.out += chunk.decode()
        return self.out

    async def finish(self, stdin: str = "", timeout: float = 30.0) -> Done:
        async with asyncio.timeout(timeout):
            out, err = await self.proc.communicate(stdin.encode())
        return Done(self.proc.returncode or 0, self.out + out.decode(), err.decode())


async def tether(stack: Stack, *args: str, stdin: str = "") -> Done:
    return await (await Cli.start(stack, *args)).finish(stdin)


def _session() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(("answer", "chosen"), [("1", "allow"), ("deny", "deny")])
async def test_run_follow_asks_inline_and_finishes(stack: Stack, answer: str, chosen: str) -> None:
    session = _session()
    cli = await Cli.start(
        stack, "run", "approval-demo", "--input", "clean", "--session", session, "-f"
    )
    asked = await cli.read_until("1-2 or an option ID:")
    # The transcript so far: the plan as a checklist, the pending tool call, the question.
    assert "☑ Inspect the build directory" in asked
    assert "☐ Remove stale build artifacts" in asked
    assert "Run `rm -rf build/` [pending]" in asked
    assert "the run is waiting for you" in asked
    assert "1. Allow" in asked and "2. Deny" in asked

    done = await cli.finish(answer + "\n")
    assert done.code == 0, done
    assert f"answered {chosen} by stack-admin" in done.out
    if chosen == "allow":
        assert "[completed]" in done.out and "Removed build/." in done.out
    else:
        assert "[failed] rejected" in done.out and "Permission denied" in done.out
    assert "✔ completed" in done.out
    last = done.out.strip().splitlines()[-1]
    assert last.startswith("● run run_") and " completed" in last

    listed = (await tether(stack, "runs", "ls", "--session", session, "--json")).json()
    [run] = listed["runs"]
    assert run["status"] == "completed" and run["agent"] == "approval-demo"
    shown = await tether(stack, "runs", "show", run["run_id"], "--json")
    assert shown.code == 0
    assert shown.json()["result"]["output"].startswith(
        "Ran" if chosen == "allow" else "Permission denied"
    )
    human = await tether(stack, "runs", "show", run["run_id"], "--events")
    assert human.code == 0
    assert "waiting_for_input" in human.out  # the history
    assert f"answered {chosen}" in human.out  # the transcript


async def test_interactions_ls_respond_and_sessions_show(stack: Stack) -> None:
    session = _session()
    started = await tether(
        stack, "run", "approval-demo", "--input", "clean", "--session", session, "--json"
    )
    assert started.code == 0, started
    run_id = started.json()["run_id"]
    async with stack.client() as client:
        await wait_for_pending_interaction(client, run_id)

    pending = await tether(
        stack, "interactions", "ls", "--status", "pending", "--session", session, "--json"
    )
    [interaction] = pending.json()["interactions"]
    assert interaction["run_id"] == run_id and interaction["kind"] == "permission"
    table = await tether(stack, "interactions", "ls", "--status", "pending", "--run", run_id)
    assert interaction["interaction_id"] in table.out and "allow/deny" in table.out

    waiting = await tether(stack, "sessions", "show", session, "--json")
    assert waiting.json()["status"] == "waiting_for_input"

    answered = await tether(stack, "interactions", "respond", interaction["interaction_id"], "2")
    assert answered.code == 0, answered
    assert '{"option_id": "deny"}' in answered.out
    async with stack.client() as client:
        done = await wait_for_run(client, run_id, FINAL)
    assert done["status"] == "completed" and "denied" in done["result"]["output"]

    again = await tether(stack, "interactions", "respond", interaction["interaction_id"], "allow")
    assert again.code == 1
    assert "is resolved" in again.err and "409" in again.err

    idle = await tether(stack, "sessions", "show", session, "--json")
    assert idle.json()["status"] == "idle" and idle.json()["last_run_id"] == run_id
    card = await tether(stack, "sessions", "show", session)
    assert session in card.out and run_id in card.out
    listed = await tether(stack, "sessions", "ls", "--limit", "500")
    assert session in listed.out


async def test_input_interaction_takes_a_text_line(stack: Stack) -> None:
    steps = {"steps": [{"ask": {"kind": "input", "prompt": "Name the release"}}]}
    done = await tether(
        stack, "run", "scripted", "--input-json", json.dumps(steps), "-f", stdin="Bluebird 2\n"
    )
    assert done.code == 0, done
    assert "Name the release" in done.out
    assert "answered Bluebird 2 by stack-admin" in done.out
    assert "✔ completed" in done.out


async def test_no_answer_on_stdin_leaves_the_run_waiting_then_cancel(stack: Stack) -> None:
    started = await tether(stack, "run", "approval-demo", "--json")
    run_id = started.json()["run_id"]
    async with stack.client() as client:
        interaction = await wait_for_pending_interaction(client, run_id)

    followed = await tether(stack, "runs", "follow", run_id, stdin="")  # stdin at its end
    assert followed.code == 3, followed
    assert "no answer on stdin" in followed.err
    assert f"tether interactions respond {interaction['interaction_id']}" in followed.err

    cancelled = await tether(stack, "runs", "cancel", run_id, "--reason", "not today", "--json")
    assert cancelled.code == 0, cancelled
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["status_reason"] == "not today"
    # A followed run that did not complete is a non-zero exit.
    replay = await tether(stack, "runs", "follow", run_id, "--no-answer")
    assert replay.code == 1
    assert "cancelled" in replay.out.strip().splitlines()[-1]
    late = await tether(stack, "runs", "cancel", run_id)
    assert late.code == 1 and "already ended (cancelled)" in late.err


async def test_errors_show_the_api_message_and_exit_non_zero(stack: Stack) -> None:
    missing = await tether(stack, "runs", "show", "run_nope")
    assert missing.code == 1
    assert "run 'run_nope' not found" in missing.err and "404" in missing.err

    unknown = await tether(stack, "run", "no-such-agent", "--input", "x")
    assert unknown.code == 1
    assert "no runner offers agent 'no-such-agent'" in unknown.err
    assert "approval-demo" in unknown.err  # the agents one could use

    as_json = await tether(stack, "interactions", "respond", "int_nope", "allow", "--json")
    assert as_json.code == 1
    error = json.loads(as_json.err)["error"]
    assert error["code"] == "interaction_not_found" and error["status"] == 404

    unreachable = await tether(stack, "--api", f"http://127.0.0.1:{free_port()}", "runs", "ls")
    assert unreachable.code == 1 and "cannot reach the Tether API" in unreachable.err


async def test_follow_resumes_after_the_api_dies(stack: Stack) -> None:
    """A second API on the same store: killed mid-stream and restarted, the CLI resumes from
    the last event it saw (Last-Event-ID) and shows every event exactly once."""
    port = free_port()
    env = {**stack.env, "TETHER_API_PORT": str(port)}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "api.main:app", "--port", str(port)]
    api = Service("api-2", argv, env, stack.runner.log_path.parent / "api-2.log")
    url = f"http://127.0.0.1:{port}"
    api.start()
    try:
        await wait_http(f"{url}/readyz", api)
        steps = []
        for i in range(30):
            steps += [{"emit": "message.delta", "data": {"text": f"{i} "}}, {"sleep": 0.1}]
        cli = await Cli.start(
            stack,
            "run",
            "scripted",
            "--input-json",
            json.dumps({"steps": steps}),
            "-f",
            "--json",
            api_url=url,
        )
        await cli.read_until('"event": "message.delta"')
        api.kill()
        await asyncio.sleep(0.5)
        api.start()
        done = await cli.finish(timeout=60)
    finally:
        api.stop()
    assert done.code == 0, done
    assert "connection lost" in done.err and "reconnected" in done.err
    lines = [json.loads(line) for line in done.out.splitlines()]
    assert lines[0]["event"] == "run" and lines[-1]["event"] == "end"
    events = lines[1:-1]
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    deltas = "".join(e["data"]["data"]["text"] for e in events if e["event"] == "message.delta")
    assert deltas == "".join(f"{i} " for i in range(30))
    assert lines[-1]["data"]["status"] == "completed"


@pytest.mark.parametrize("command", [["tether", "migrate"], ["store", "migrate"]])
async def test_both_migrate_commands_create_the_configured_project(
    database_url: str, command: list[str]
) -> None:
    """``tether migrate`` and ``python -m store migrate`` do the same: the schema, then the
    project a deployment configured (the migration itself creates only "default")."""
    project = f"proj-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(TETHER_DATABASE_URL=database_url, TETHER_DEFAULT_PROJECT_ID=project)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", *command, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().startswith("migrated ")

    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            ids = set((await connection.execute(select(Project.project_id))).scalars())
    finally:
        await engine.dispose()
    assert {"default", project} <= ids


async def _local(stack: Stack, *args: str) -> Done:
    """A ``tether keys`` command: straight to the stack's store, no API key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env.update(TETHER_DATABASE_URL=stack.database_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tether",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    return Done(proc.returncode or 0, out.decode(), err.decode())


async def test_keys_create_ls_revoke_straight_in_the_store(stack: Stack) -> None:
    project, name = f"cli-{uuid.uuid4().hex[:8]}", f"ci-{uuid.uuid4().hex[:6]}"
    created = await _local(
        stack, "keys", "create", "--project", project, "--role", "viewer", "--name", name,
        "--expires-in", "12h",
    )  # fmt: skip
    assert created.code == 0, created
    token = created.out.strip()
    assert token.startswith("tk_") and "not shown again" in created.err
    async with stack.client(token) as client:
        assert (await client.get("/v1/runs")).json()["runs"] == []  # a new, empty project
        assert (await client.post("/v1/runs", json={"agent": "echo"})).status_code == 403

    listed = (await _local(stack, "keys", "ls", "--project", project, "--json")).json()["keys"]
    [key] = listed
    assert (key["name"], key["role"], key["project_id"]) == (name, "viewer", project)
    assert key["expires_at"] is not None and "token" not in key
    table = await _local(stack, "keys", "ls", "--project", project)
    assert key["key_id"] in table.out and name in table.out

    revoked = await _local(stack, "keys", "revoke", "--project", project, key["key_id"])
    assert revoked.code == 0 and "revoked key" in revoked.out
    async with stack.client(token) as client:
        assert (await client.get("/v1/runs")).status_code == 401
    elsewhere = await _local(stack, "keys", "revoke", key["key_id"])  # the default project
    assert elsewhere.code == 1 and "has no key" in elsewhere.err
    bad = await _local(
        stack, "keys", "create", "--project", "a.b", "--role", "admin", "--name", "x"
    )
    assert bad.code == 2
    assert (await _local(stack, "keys", "create", "--role", "admin", "--name", "x",
                         "--expires-in", "soon")).code == 2  # fmt: skip


async def test_the_cli_without_a_key_is_told_so(stack: Stack) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether", "--api", stack.api_url, "runs", "ls",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd="/",
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert "401" in err.decode() and "API key" in err.decode()


async def test_the_cli_finds_the_dev_stack_key_in_the_checkout(
    stack: Stack, tmp_path: Path
) -> None:
    """``tether dev`` leaves its key in ``.tether/dev-admin-key``; run from there, the CLI
    sends it with no ``$TETHER_API_KEY``."""
    settings = Settings(data_dir=tmp_path / ".tether", database_url=stack.database_url)
    settings.data_dir.mkdir()
    key_file = await ensure_dev_key(settings)
    assert key_file == (tmp_path / ".tether" / "dev-admin-key").resolve()
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert await ensure_dev_key(settings) == key_file  # still valid: kept
    token = key_file.read_text().strip()

    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether", "--api", stack.api_url, "agents", "ls", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert json.loads(out)["agents"]

    # A key the store no longer accepts is replaced on the next start.
    [key] = [
        k
        for k in (await _local(stack, "keys", "ls", "--json")).json()["keys"]
        if token.startswith(k["prefix"] + "_")
    ]
    assert key["name"] == "dev-admin" and key["role"] == "admin"
    await _local(stack, "keys", "revoke", key["key_id"])
    await ensure_dev_key(settings)
    assert key_file.read_text().strip() != token
