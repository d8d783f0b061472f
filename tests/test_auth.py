"""API keys, roles and projects on the real stack: who may call what, and what they see."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from store.keys import Role
from tether.devstack.stack import Stack


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
