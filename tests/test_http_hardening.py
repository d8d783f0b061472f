"""HTTP hardening of the API: strict bodies, security headers, allowed hosts, CORS only when
configured, no stack trace in any answer, and /docs and /metrics only when switched on.

The live stack serves docs and metrics as ``tether dev`` does; apps built in-process (with
httpx's ASGI transport, no lifespan: the routes tried here need neither store nor Temporal)
check the settings' other values."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from api.main import create_app
from tether.devstack.stack import Stack
from tether.secret_box import new_key
from tether.settings import Settings

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def settings(**overrides: Any) -> Settings:
    return Settings(_env_file=None, secrets_key=SecretStr(new_key()), **overrides)  # type: ignore[call-arg]


@pytest.fixture
async def local_app() -> AsyncIterator[httpx.AsyncClient]:
    """The API with default settings, and a route that fails unexpectedly."""
    app = create_app(settings())

    @app.get("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("db password is hunter2")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client


def assert_security_headers(response: httpx.Response, csp: str = API_CSP) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)
    assert response.headers["content-security-policy"] == csp


# Strict request bodies.


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


# Bodies of another party's protocol: Temporal's remote codec keeps fields a newer UI adds
# (``externalPayloads``) rather than refusing them.
EXTERNAL_PROTOCOL = {"CodecPayload", "CodecPayloads"}


def test_every_request_body_schema_forbids_unknown_fields() -> None:
    spec = create_app(settings()).openapi()
    schemas = spec["components"]["schemas"]
    bodies = {
        f"{method.upper()} {path}": _refs(operation["requestBody"])
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    }
    seen: set[str] = set()
    todo = sorted(set().union(*bodies.values()))
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += sorted(_refs(schemas[name]))
    objects = {name for name in seen if "properties" in schemas[name]}

    assert {"RunCreate", "TriggerCreate", "TriggerUpdate", "TriggerTarget"} <= objects
    lax = sorted(n for n in objects if schemas[n].get("additionalProperties") is not False)
    assert lax == sorted(EXTERNAL_PROTOCOL & objects)


TRIGGER = {"name": "t", "kind": "webhook", "target": {"agent": "echo", "input": "x"}}
WINDOW = {"start_at": "2030-01-01T00:00:00Z", "end_at": "2030-01-02T00:00:00Z"}
# (method, path, a valid body): each route is sent that body with an unknown field added.
BODIES = [
    ("POST", "/v1/runs", {"agent": "echo", "input": "x"}),
    ("POST", "/v1/sessions/s-strict/runs", {"agent": "echo", "input": "x"}),
    ("POST", "/v1/runs/run_x/cancel", {"reason": "r"}),
    ("POST", "/v1/interactions/int_x/respond", {"response": {"option_id": "allow"}}),
    ("POST", "/v1/triggers", TRIGGER),
    ("PATCH", "/v1/triggers/trg_x", {"name": "renamed"}),
    ("POST", "/v1/triggers/trg_x/rotate-secret", {"overlap_s": 5}),
    ("POST", "/v1/triggers/trg_x/backfill", WINDOW),
]


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[b[1] for b in BODIES])
async def test_unknown_fields_are_422(
    stack: Stack, method: str, path: str, body: dict[str, Any]
) -> None:
    async with stack.client() as client:
        response = await client.request(method, path, json={**body, "surprise": 1})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [e["type"] for e in error["details"]["errors"]] == ["extra_forbidden"]


async def test_unknown_nested_fields_are_422(stack: Stack) -> None:
    nested = {**TRIGGER, "target": {**TRIGGER["target"], "sesion_id": "typo"}}  # type: ignore[dict-item]
    async with stack.client() as client:
        response = await client.post("/v1/triggers", json=nested)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["errors"][0]["loc"] == [
        "body",
        "target",
        "sesion_id",
    ]


# Security headers.


async def test_every_answer_carries_the_security_headers(stack: Stack) -> None:
    async with stack.client() as client:
        answers = {
            "ok": await client.get("/v1/runs"),
            "health": await client.get("/healthz"),
            "not found": await client.get("/v1/runs/run_nope"),
            "no route": await client.get("/nowhere"),
            "invalid": await client.post("/v1/runs", json={}),
            "metrics": await client.get("/metrics"),
            "schema": await client.get("/openapi.json"),
        }
        async with client.stream("GET", "/v1/runs/run_nope/stream") as stream:
            answers["stream"] = stream

    assert {k: r.status_code for k, r in answers.items()} == {
        "ok": 200,
        "health": 200,
        "not found": 404,
        "no route": 404,
        "invalid": 422,
        "metrics": 200,
        "schema": 200,
        "stream": 404,
    }
    for response in answers.values():
        assert_security_headers(response)
        assert response.headers["cache-control"] == "no-store"


async def test_the_event_stream_keeps_its_own_cache_control(stack: Stack) -> None:
    async with stack.client() as client:
        started = await client.post("/v1/runs", json={"agent": "echo", "input": "hi"})
        run_id = started.json()["run_id"]
        async with client.stream("GET", f"/v1/runs/{run_id}/stream") as stream:
            headers = stream.headers

    assert stream.status_code == 200
    assert headers["cache-control"] == "no-cache"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_pages_have_a_strict_csp_that_allows_their_own_script(
    stack: Stack, page: str
) -> None:
    async with stack.client() as client:
        response = await client.get(page)

    assert response.status_code == 200
    policy = dict(
        part.strip().split(" ", 1)
        for part in response.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy["script-src"] and "*" not in policy["script-src"]
    for script in re.findall(r"<script>(.*?)</script>", response.text, flags=re.DOTALL):
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy["script-src"]
    for source in re.findall(r'<script src="([^"]+)"', response.text):
        assert source.startswith("https://cdn.jsdelivr.net/")


# Allowed hosts and CORS.


async def test_other_hosts_are_refused(stack: Stack) -> None:
    async with stack.client() as client:
        evil = await client.get("/v1/runs", headers={"Host": "evil.example"})
        rebound = await client.get("/v1/runs", headers={"Host": "127.0.0.1.nip.io:8000"})
        local = await client.get("/v1/runs", headers={"Host": "localhost"})

    assert evil.status_code == 400 and rebound.status_code == 400
    assert_security_headers(evil)
    assert local.status_code == 200


async def test_configured_hosts_replace_the_default() -> None:
    app = create_app(settings(allowed_hosts="api.example.com, *.internal"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.example.com") as client:
        named = await client.get("/healthz")
        pattern = await client.get("/healthz", headers={"Host": "tether.internal"})
        loopback = await client.get("/healthz", headers={"Host": "127.0.0.1"})

    assert (named.status_code, pattern.status_code, loopback.status_code) == (200, 200, 400)


async def test_no_cors_headers_unless_configured(stack: Stack) -> None:
    origin = {"Origin": "https://evil.example"}
    async with stack.client() as client:
        simple = await client.get("/v1/runs", headers=origin)
        preflight = await client.options(
            "/v1/runs", headers={**origin, "Access-Control-Request-Method": "POST"}
        )

    assert "access-control-allow-origin" not in simple.headers
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 405


async def test_cors_answers_only_the_configured_origins() -> None:
    app = create_app(settings(cors_origins="https://ui.example.com/"))
    transport = httpx.ASGITransport(app=app)
    preflight = {"Access-Control-Request-Method": "POST"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        allowed = await client.options(
            "/v1/runs", headers={**preflight, "Origin": "https://ui.example.com"}
        )
        other = await client.options(
            "/v1/runs", headers={**preflight, "Origin": "https://evil.example"}
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ui.example.com"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in other.headers


# Errors and switches.


async def test_an_unexpected_error_is_a_500_envelope_without_its_trace(
    local_app: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="tether.api"):
        response = await local_app.get("/v1/boom")

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal_error",
            "message": "the server failed to answer; see its log",
            "details": {},
        }
    }
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert_security_headers(response)
    assert any("hunter2" in (r.exc_text or "") for r in caplog.records)  # in the log instead


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json", "/metrics"])
async def test_docs_and_metrics_are_off_by_default(local_app: httpx.AsyncClient, path: str) -> None:
    response = await local_app.get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_debug_is_off() -> None:
    assert create_app(settings(api_docs=True)).debug is False
