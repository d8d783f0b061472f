"""API keys, roles and projects on the real stack: who may call what, and what they see."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute
from temporalio.client import Client, WorkflowExecutionStatus

from api.auth import Access
from api.main import create_app
from store.keys import Role
from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tether.devstack.processes import Service, free_port, wait_http
from tether.devstack.stack import Stack
from tether.ids import session_workflow_id
from tether.secret_box import new_key
from tether.settings import Settings

FINAL = {"completed", "failed", "cancelled", "timed_out"}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_no_key_or_a_bad_key_is_401_with_a_bearer_challenge(stack: Stack) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer tk_aaaaaaaa_" + "b" * 43},
        {"Authorization": "Bearer not-a-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"X-Api-Key": stack.api_key + "x"},
    ):
        async with stack.client(api_key="") as client:
            answer = await client.get("/v1/runs", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.headers["www-authenticate"] == "Bearer"
        assert answer.json()["error"]["code"] in {"missing_api_key", "invalid_api_key"}


async def test_x_api_key_is_accepted_like_a_bearer_token(stack: Stack) -> None:
    async with stack.client(api_key="") as client:
        answer = await client.get("/v1/runs", headers={"X-Api-Key": stack.api_key})
    assert answer.status_code == 200


async def test_a_viewer_reads_but_cannot_start_a_run(stack: Stack) -> None:
    viewer = await stack.create_key(Role.VIEWER, name=_name("viewer"))
    async with stack.client(viewer) as client:
        assert (await client.get("/v1/runs")).status_code == 200
        refused = await client.post("/v1/runs", json={"agent": "echo", "input": "hi"})
    assert refused.status_code == 403
    assert refused.json()["error"]["details"] == {"required_role": "operator", "role": "viewer"}


async def test_an_expired_key_is_refused_on_the_next_request(stack: Stack) -> None:
    soon = datetime.now(UTC) + timedelta(seconds=1)
    expiring = await stack.create_key(Role.VIEWER, name=_name("expiring"), expires_at=soon)
    async with stack.client(expiring) as client:
        assert (await client.get("/v1/runs")).status_code == 200
        while datetime.now(UTC) <= soon:  # not a timed assertion: wait past the instant itself
            await asyncio.sleep(0.1)
        refused = await client.get("/v1/runs")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


async def test_keys_api_creates_lists_and_revokes_and_revocation_is_immediate(
    stack: Stack,
) -> None:
    name = _name("ci")
    async with stack.client() as admin:
        created = await admin.post("/v1/keys", json={"name": name, "role": "operator"})
        assert created.status_code == 201, created.text
        key = created.json()
        token = key["token"]
        assert token.startswith(key["prefix"] + "_") and key["prefix"] == f"tk_{key['key_id']}"
        assert key["role"] == "operator" and key["expires_at"] is None

        async with stack.client(token) as holder:
            assert (await holder.get("/v1/runs")).status_code == 200
            listed = (await admin.get("/v1/keys")).json()["keys"]
            [shown] = [k for k in listed if k["key_id"] == key["key_id"]]
            assert "token" not in shown and "hash" not in shown
            assert shown["name"] == name and shown["last_used_at"] is not None
            # An operator is not an admin: keys are not its business.
            assert (await holder.get("/v1/keys")).status_code == 403

            revoked = await admin.delete(f"/v1/keys/{key['key_id']}")
            assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
            refused = await holder.get("/v1/runs")
            assert refused.status_code == 401

        listed = (await admin.get("/v1/keys")).json()["keys"]
        assert key["key_id"] not in [k["key_id"] for k in listed]
        every = (await admin.get("/v1/keys", params={"include_revoked": "true"})).json()["keys"]
        assert key["key_id"] in [k["key_id"] for k in every]
        assert (await admin.delete("/v1/keys/nokey123")).status_code == 404
        too_long = await admin.post(
            "/v1/keys", json={"name": name, "role": "admin", "expires_in_s": 10**12}
        )
        assert too_long.status_code == 422


async def _two_projects(stack: Stack) -> tuple[str, str]:
    """An admin key of a new project B, beside the stack's admin key of project A."""
    project_b = f"p-{uuid.uuid4().hex[:8]}"
    key_b = await stack.create_key(Role.ADMIN, name=_name("b-admin"), project_id=project_b)
    return project_b, key_b


async def test_two_projects_run_the_same_session_id_side_by_side(
    stack: Stack, temporal_client: Client
) -> None:
    project_b, key_b = await _two_projects(stack)
    session = _name("shared")
    path = f"/v1/sessions/{session}/runs"
    async with stack.client() as a, stack.client(key_b) as b:
        run_a = (await a.post(path, json={"agent": "approval-demo", "input": "A"})).json()
        run_b = (await b.post(path, json={"agent": "approval-demo", "input": "B"})).json()
        assert run_a["session_id"] == run_b["session_id"] == session
        assert (run_a["project_id"], run_b["project_id"]) == (stack.project_id, project_b)
        ask_a = await wait_for_pending_interaction(a, run_a["run_id"])
        ask_b = await wait_for_pending_interaction(b, run_b["run_id"])

        # One workflow per (project, session), both open at once.
        for project in (stack.project_id, project_b):
            handle = temporal_client.get_workflow_handle(session_workflow_id(project, session))
            assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        shown_a = (await a.get(f"/v1/sessions/{session}")).json()
        shown_b = (await b.get(f"/v1/sessions/{session}")).json()
        assert shown_a["active_run_id"] == run_a["run_id"]
        assert shown_b["active_run_id"] == run_b["run_id"]

        # Each answers its own; the outcomes differ, as the answers did.
        for client, ask, option in ((a, ask_a, "allow"), (b, ask_b, "deny")):
            answered = await client.post(
                f"/v1/interactions/{ask['interaction_id']}/respond",
                json={"response": {"option_id": option}},
            )
            assert answered.status_code == 202, answered.text
        done_a = await wait_for_run(a, run_a["run_id"], FINAL)
        done_b = await wait_for_run(b, run_b["run_id"], FINAL)
    assert done_a["status"] == "completed" and done_a["result"]["output"].startswith("Ran")
    assert done_b["status"] == "completed" and "denied" in done_b["result"]["output"]
    assert (await _listed_runs(stack, stack.api_key, session)) == [run_a["run_id"]]
    assert (await _listed_runs(stack, key_b, session)) == [run_b["run_id"]]


async def _listed_runs(stack: Stack, key: str, session: str) -> list[str]:
    async with stack.client(key) as client:
        runs = (await client.get("/v1/runs", params={"session_id": session})).json()["runs"]
    return [r["run_id"] for r in runs]


async def test_another_projects_objects_are_404_and_untouchable(stack: Stack) -> None:
    _, key_b = await _two_projects(stack)
    async with stack.client() as a, stack.client(key_b) as b:
        run = (await b.post("/v1/runs", json={"agent": "approval-demo"})).json()
        ask = await wait_for_pending_interaction(b, run["run_id"])
        trigger = (
            await b.post(
                "/v1/triggers",
                json={
                    "name": _name("b-trigger"),
                    "kind": "schedule",
                    "target": {"agent": "echo", "input": "from B"},
                    "schedule": {"interval_s": 86400},
                    "paused": True,
                },
            )
        ).json()
        hook = (
            await b.post(
                "/v1/triggers",
                json={
                    "name": _name("b-hook"),
                    "kind": "webhook",
                    "target": {"agent": "echo", "input": "from B"},
                },
            )
        ).json()
        run_id, session_id = run["run_id"], run["session_id"]
        interaction_id, trigger_id = ask["interaction_id"], trigger["trigger_id"]
        await b.post(f"/v1/triggers/{trigger_id}/resume")
        fired = await b.post(f"/v1/triggers/{trigger_id}/fire")
        assert fired.status_code == 202, fired.text
        [delivery] = await _until_deliveries(b, trigger_id)

        reads = [
            f"/v1/runs/{run_id}",
            f"/v1/runs/{run_id}/events",
            f"/v1/runs/{run_id}/stream",
            f"/v1/runs/{run_id}/history",
            f"/v1/sessions/{session_id}",
            f"/v1/sessions/{session_id}/active-run",
            f"/v1/interactions/{interaction_id}",
            f"/v1/triggers/{trigger_id}",
            f"/v1/triggers/{trigger_id}/deliveries",
            f"/v1/triggers/{trigger_id}/deliveries/{delivery['delivery_id']}",
            f"/v1/triggers/{hook['trigger_id']}",
        ]
        for path in reads:
            answer = await a.get(path)
            assert answer.status_code == 404, (path, answer.text)
        for listing, field in (
            ("/v1/runs", "runs"),
            ("/v1/interactions", "interactions"),
            ("/v1/sessions", "sessions"),
            ("/v1/triggers", "triggers"),
        ):
            seen = (await a.get(listing, params={"limit": 500})).json()[field]
            assert not [row for row in seen if row.get("project_id") not in (None, "default")]
        assert run_id not in [r["run_id"] for r in (await a.get("/v1/runs")).json()["runs"]]

        writes = [
            (
                "POST",
                f"/v1/interactions/{interaction_id}/respond",
                {"response": {"option_id": "allow"}},
            ),
            ("POST", f"/v1/runs/{run_id}/cancel", {"reason": "not mine"}),
            ("POST", f"/v1/triggers/{trigger_id}/fire", None),
            ("POST", f"/v1/triggers/{trigger_id}/pause", None),
            ("PATCH", f"/v1/triggers/{trigger_id}", {"name": "taken"}),
            ("POST", f"/v1/triggers/{trigger_id}/backfill", _BACKFILL),
            ("DELETE", f"/v1/triggers/{trigger_id}", None),
        ]
        for method, path, body in writes:
            answer = await a.request(method, path, json=body)
            assert answer.status_code == 404, (method, path, answer.text)

        # None of it happened: B's run still waits, its trigger is untouched.
        still = (await b.get(f"/v1/runs/{run_id}")).json()
        assert still["status"] == "waiting_for_input"
        assert (await b.get(f"/v1/interactions/{interaction_id}")).json()["status"] == "pending"
        kept = (await b.get(f"/v1/triggers/{trigger_id}")).json()
        assert kept["name"] == trigger["name"] and kept["paused"] is False
        assert len(await _until_deliveries(b, trigger_id)) == 1
        await b.post(f"/v1/runs/{run_id}/cancel")
        await b.delete(f"/v1/triggers/{trigger_id}")


_BACKFILL = {"start_at": "2026-01-01T00:00:00Z", "end_at": "2026-01-02T00:00:00Z"}


async def _until_deliveries(client: httpx.AsyncClient, trigger_id: str) -> list[dict[str, Any]]:
    for _ in range(300):
        found = (await client.get(f"/v1/triggers/{trigger_id}/deliveries")).json()["deliveries"]
        if found:
            return found
        await asyncio.sleep(0.05)
    raise TimeoutError(f"trigger {trigger_id} has no delivery")


async def test_the_key_names_who_answered_and_who_cancelled(stack: Stack) -> None:
    answerer, canceller = _name("alice"), _name("bob")
    key_answer = await stack.create_key(Role.OPERATOR, name=answerer)
    key_cancel = await stack.create_key(Role.OPERATOR, name=canceller)
    async with stack.client(key_answer) as alice, stack.client(key_cancel) as bob:
        first = (await alice.post("/v1/runs", json={"agent": "approval-demo"})).json()
        ask = await wait_for_pending_interaction(alice, first["run_id"])
        answered = await alice.post(
            f"/v1/interactions/{ask['interaction_id']}/respond",
            json={"response": {"option_id": "allow"}, "responder": "somebody else"},
        )
        assert answered.status_code == 202
        await wait_for_run(alice, first["run_id"], FINAL)
        record = (await alice.get(f"/v1/interactions/{ask['interaction_id']}")).json()
        assert record["responder"] == answerer
        events = (await alice.get(f"/v1/runs/{first['run_id']}/events")).json()["events"]
        [resolved] = [e for e in events if e["type"] == "interaction.resolved"]
        assert resolved["data"]["responder"] == answerer

        second = (await alice.post("/v1/runs", json={"agent": "approval-demo"})).json()
        await wait_for_pending_interaction(alice, second["run_id"])
        cancel = await bob.post(f"/v1/runs/{second['run_id']}/cancel", json={"reason": "stop"})
        assert cancel.status_code == 202
        done = await wait_for_run(bob, second["run_id"], FINAL)
        assert done["status"] == "cancelled" and done["status_reason"] == "stop"
        history = (await bob.get(f"/v1/runs/{second['run_id']}/history")).json()
    last = history["transitions"][-1]
    assert (last["status"], last["reason"], last["actor"]) == ("cancelled", "stop", canceller)
    assert {t["actor"] for t in history["transitions"][:-1]} == {None}


def _settings(**values: Any) -> Settings:
    return Settings(_env_file=None, secrets_key=SecretStr(new_key()), **values)  # type: ignore[call-arg]


@pytest.mark.parametrize("switch", ["auth_disabled", "codec_open"])
def test_auth_can_be_off_only_on_a_loopback_api(switch: str) -> None:
    for host in ("0.0.0.0", "10.1.2.3", "api.example.com"):
        with pytest.raises(RuntimeError, match="loopback"):
            create_app(_settings(**{switch: True}, api_host=host))
    for host in ("127.0.0.1", "::1", "localhost"):
        create_app(_settings(**{switch: True}, api_host=host))
    create_app(_settings(api_host="0.0.0.0"))  # with keys, any address


async def test_with_auth_off_every_caller_is_an_admin_of_the_default_project(
    stack: Stack,
) -> None:
    port = free_port()
    env = {**stack.env, "TETHER_API_PORT": str(port), "TETHER_AUTH_DISABLED": "true"}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "api.main:app", "--port", str(port)]
    api = Service("api-open", argv, env, stack.runner.log_path.parent / "api-open.log")
    api.start()
    try:
        await wait_http(f"http://127.0.0.1:{port}/readyz", api)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as anonymous:
            assert (await anonymous.get("/v1/runs")).status_code == 200
            assert (await anonymous.get("/v1/keys")).status_code == 200
    finally:
        api.stop()


# The role table: every route of the app, generated, so a route added without a declared
# access rule fails here.

# FastAPI's own pages: the OpenAPI document and the docs UIs that read it.
FASTAPI_PAGES = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _access_of(dependant: Dependant) -> list[Access]:
    found = [dependant.call] if isinstance(dependant.call, Access) else []
    for sub in dependant.dependencies:
        found += _access_of(sub)
    return found


def _flat(routes: list[BaseRoute]) -> list[BaseRoute]:
    """The app's routes, through the included routers (FastAPI keeps them unflattened; their
    routes' paths carry the router's prefix, and ``api.main`` includes them without one)."""
    flat: list[BaseRoute] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        flat += _flat(inner.routes) if inner is not None else [route]
    return flat


def _routes() -> list[tuple[str, str, Access]]:
    table = []
    # Every optional route served (/metrics, /docs), as under `tether dev`.
    for route in _flat(create_app(_settings(api_metrics=True, api_docs=True)).routes):
        if getattr(route, "path", None) in FASTAPI_PAGES:
            continue  # the API's own description, open where it is switched on
        assert isinstance(route, APIRoute), route
        access = set(_access_of(route.dependant))
        assert len(access) == 1, f"{route.path} declares no access rule (or several): {access}"
        for method in sorted(route.methods):
            table.append((method, route.path, next(iter(access))))
    return table


ROUTES = _routes()


def _policy(method: str, path: str) -> str:
    """What each route must declare: the roles as docs/security.md states them."""
    if path in {"/healthz", "/readyz"}:
        return "none"
    if path == "/v1/triggers/{trigger_id}/fire":
        return "optional"  # the signature, or an admin key for a schedule's fire now
    if path.startswith("/v1/keys"):
        return "admin"
    if path == "/codec/decode":
        return "viewer"  # reads payloads
    if path == "/codec/encode":
        return "operator"  # what it encrypts, workers accept as ours
    if method == "GET":
        return "viewer"  # runs, transcripts, interactions, sessions, triggers, agents, metrics
    if path.startswith("/v1/triggers"):
        return "admin"
    operator = {"/v1/runs", "/v1/sessions/{session_id}/runs", "/v1/runs/{run_id}/cancel"}
    if path in operator or path == "/v1/interactions/{interaction_id}/respond":
        return "operator"
    raise AssertionError(f"{method} {path}: no policy says who may call it")


@pytest.mark.parametrize(
    ("method", "path", "access"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
def test_each_route_declares_the_role_the_policy_gives_it(
    method: str, path: str, access: Access
) -> None:
    declared = access.role.value if access.role is not None else access.key
    assert declared == _policy(method, path)


CALLERS: list[Role | None] = [None, Role.VIEWER, Role.OPERATOR, Role.ADMIN]


@pytest.fixture(scope="module")
async def role_keys(sqlite_stack: Stack) -> dict[Role, str]:
    return {role: await sqlite_stack.create_key(role, name=f"table-{role.value}") for role in Role}


def _expected(access: Access, caller: Role | None) -> str:
    if access.key == "none":
        return "allowed"
    if caller is None:
        return "401"
    assert access.role is not None
    return "allowed" if caller.allows(access.role) else "403"


@pytest.mark.parametrize(
    ("method", "path", "access"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
async def test_each_role_against_each_route(
    stack: Stack, role_keys: dict[Role, str], method: str, path: str, access: Access
) -> None:
    if access.key == "optional":  # the webhook route: its own test below
        assert path == "/v1/triggers/{trigger_id}/fire"
        return
    # IDs nobody has: an allowed call gets as far as 404 (or 422), never touching anything.
    concrete = path.replace("{session_id}", "no-such-session")
    concrete = concrete.replace("{", "nope-").replace("}", "")
    body = {} if method in {"POST", "PATCH"} else None
    for caller in CALLERS:
        token = "" if caller is None else role_keys[caller]
        async with stack.client(token) as client:
            answer = await client.request(method, concrete, json=body)
        expected = _expected(access, caller)
        seen = str(answer.status_code) if answer.status_code in (401, 403) else "allowed"
        assert seen == expected, (method, path, caller, answer.status_code, answer.text)
        if seen == "allowed":
            assert answer.status_code < 500, answer.text


async def test_fire_now_needs_an_admin_key_and_a_webhook_needs_none(
    stack: Stack, role_keys: dict[Role, str]
) -> None:
    async with stack.client() as admin:
        schedule = (
            await admin.post(
                "/v1/triggers",
                json={
                    "name": _name("fire-now"),
                    "kind": "schedule",
                    "target": {"agent": "echo", "input": "x"},
                    "schedule": {"interval_s": 86400},
                    "paused": True,
                },
            )
        ).json()
        hook = (
            await admin.post(
                "/v1/triggers",
                json={"name": _name("hook"), "kind": "webhook", "target": {"agent": "echo"}},
            )
        ).json()
    fire = f"/v1/triggers/{schedule['trigger_id']}/fire"
    for caller, status in ((None, 401), (Role.VIEWER, 403), (Role.OPERATOR, 403)):
        async with stack.client("" if caller is None else role_keys[caller]) as client:
            assert (await client.post(fire)).status_code == status, caller
    async with stack.client(role_keys[Role.ADMIN]) as client:
        paused = await client.post(fire)
    assert paused.status_code == 409  # allowed, and refused for being paused

    # A webhook's credential is its signature: without a key, a bad one is the signature's 401.
    async with stack.client("") as anonymous:
        unsigned = await anonymous.post(f"/v1/triggers/{hook['trigger_id']}/fire", json={})
    assert unsigned.status_code == 401
    assert unsigned.json()["error"]["code"] != "missing_api_key"


async def test_a_queued_run_cancelled_by_a_key_records_it(stack: Stack) -> None:
    canceller = _name("carol")
    key = await stack.create_key(Role.OPERATOR, name=canceller)
    path = f"/v1/sessions/{_name('queue')}/runs"
    async with stack.client() as admin, stack.client(key) as carol:
        first = (await admin.post(path, json={"agent": "approval-demo"})).json()
        await wait_for_pending_interaction(admin, first["run_id"])
        queued = (
            await admin.post(path, json={"agent": "echo", "input": "x", "multitask": "enqueue"})
        ).json()
        assert queued["status"] == "queued"
        assert (await carol.post(f"/v1/runs/{queued['run_id']}/cancel")).status_code == 202
        done = await wait_for_run(carol, queued["run_id"], FINAL)
        history = (await carol.get(f"/v1/runs/{queued['run_id']}/history")).json()
        await admin.post(f"/v1/runs/{first['run_id']}/cancel")
    assert done["status"] == "cancelled"
    assert history["transitions"][-1]["actor"] == canceller


def test_a_project_id_with_a_dot_is_refused_in_the_settings() -> None:
    """It would make ``session-{project}.{session}`` ambiguous."""
    with pytest.raises(ValueError, match="project ID"):
        Settings(default_project_id="team.a")
    assert Settings(default_project_id="team-a").default_project_id == "team-a"
