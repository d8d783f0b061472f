"""Webhook secrets at rest: sealed in the store (never in clear in a row or the database file),
sealed by the migration where an older store kept them in clear, resealed when the key
rotates, and rotated per trigger with an overlap in which both secrets sign."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.signatures import sign
from store import triggers
from store.db import create_engine, migrate, migrate_store, session_factory
from tests.test_trigger_store import T0, _trigger
from tether.devstack.processes import free_port
from tether.devstack.stack import Stack
from tether.secret_box import SecretBox, SecretsKeyError, is_sealed, new_key, parse_key

Db = tuple[AsyncEngine, async_sessionmaker[AsyncSession]]
BOX = SecretBox(b"k" * 32)
PLAIN = "whsec_plaintext-marker-7f3a9c"


async def _raw_secrets(factory: async_sessionmaker[AsyncSession], trigger_id: str) -> Any:
    async with factory() as session:
        row = await session.execute(
            text(
                "SELECT webhook_secret, webhook_previous_secret FROM triggers WHERE trigger_id = :t"
            ),
            {"t": trigger_id},
        )
        return row.one()


# The box itself.


def test_a_sealed_value_opens_only_with_its_key_and_context() -> None:
    sealed = BOX.seal(PLAIN, "triggers/trg_a")

    assert is_sealed(sealed) and PLAIN not in sealed
    assert BOX.open(sealed, "triggers/trg_a") == PLAIN
    assert BOX.seal(PLAIN, "triggers/trg_a") != sealed  # a fresh nonce every time
    with pytest.raises(SecretsKeyError, match="does not open"):
        BOX.open(sealed, "triggers/trg_b")
    with pytest.raises(SecretsKeyError, match="neither TETHER_SECRETS_KEY"):
        SecretBox(b"o" * 32).open(sealed, "triggers/trg_a")
    assert SecretBox(b"o" * 32, [b"k" * 32]).open(sealed, "triggers/trg_a") == PLAIN


@pytest.mark.parametrize("key", ["", "short", "a" * 40, "not base64 at all!!"])
def test_a_key_must_be_32_bytes_of_base64(key: str) -> None:
    with pytest.raises(SecretsKeyError, match="32 random bytes"):
        parse_key(key)


def test_generated_keys_parse_in_both_base64_alphabets() -> None:
    key = new_key()
    assert len(parse_key(key)) == 32
    assert parse_key(key.replace("-", "+").replace("_", "/")) == parse_key(key)


# The store.


async def test_the_secret_is_sealed_in_its_row(db: Db) -> None:
    _, factory = db
    async with factory.begin() as session:
        await triggers.insert_trigger(session, _trigger("trg_a"), PLAIN, BOX)
        await triggers.insert_trigger(session, _trigger("trg_b"), "whsec_other-0123456789", BOX)

    current, previous = await _raw_secrets(factory, "trg_a")
    assert is_sealed(current) and PLAIN not in current and previous is None
    async with factory() as session:
        found = await triggers.find_trigger(session, "trg_a")
    assert found is not None and found.signing_secrets(BOX, T0) == [PLAIN]

    # A sealed value copied onto another trigger's row does not open there.
    async with factory.begin() as session:
        await session.execute(
            text("UPDATE triggers SET webhook_secret = :s WHERE trigger_id = 'trg_b'"),
            {"s": current},
        )
    async with factory() as session:
        moved = await triggers.find_trigger(session, "trg_b")
    assert moved is not None
    with pytest.raises(SecretsKeyError):
        moved.signing_secrets(BOX, T0)


async def test_a_rotated_secret_is_valid_until_its_overlap_ends(db: Db) -> None:
    _, factory = db
    until = T0 + timedelta(hours=1)
    async with factory.begin() as session:
        await triggers.insert_trigger(session, _trigger("trg_r"), "whsec_first-000000000", BOX)
        await triggers.rotate_webhook_secret(
            session, "trg_r", "whsec_second-00000000", until, T0, BOX
        )
    async with factory() as session:
        found = await triggers.find_trigger(session, "trg_r")
    assert found is not None
    assert found.signing_secrets(BOX, T0 + timedelta(minutes=59)) == [
        "whsec_second-00000000",
        "whsec_first-000000000",
    ]
    assert found.signing_secrets(BOX, until) == ["whsec_second-00000000"]
    assert all(PLAIN not in (value or "") for value in await _raw_secrets(factory, "trg_r"))

    # A rotation without overlap retires the current secret, and the one before it, at once.
    async with factory.begin() as session:
        await triggers.rotate_webhook_secret(session, "trg_r", "whsec_third-000000000", T0, T0, BOX)
    async with factory() as session:
        found = await triggers.find_trigger(session, "trg_r")
    assert found is not None and found.signing_secrets(BOX, T0) == ["whsec_third-000000000"]
    assert (await _raw_secrets(factory, "trg_r"))[1] is None


async def test_migrate_store_reseals_secrets_after_the_key_rotated(database_url: str) -> None:
    engine = create_engine(database_url)
    factory = session_factory(engine)
    try:
        async with factory.begin() as session:
            await triggers.insert_trigger(session, _trigger("trg_k"), "whsec_first-000000000", BOX)
            await triggers.rotate_webhook_secret(
                session, "trg_k", PLAIN, T0 + timedelta(days=400), T0, BOX
            )
        rotated = SecretBox(b"n" * 32, [b"k" * 32])
        await migrate_store(database_url, "default", rotated)

        assert all(rotated.is_current(v) for v in await _raw_secrets(factory, "trg_k"))
        async with factory() as session:
            found = await triggers.find_trigger(session, "trg_k")
        assert found is not None
        # The old key is no longer needed.
        assert found.signing_secrets(SecretBox(b"n" * 32), T0) == [PLAIN, "whsec_first-000000000"]
    finally:
        await engine.dispose()


async def _store_before_sealing(tmp_path: Path) -> str:
    """A SQLite store at revision 0005 holding a webhook secret in clear, as stores did."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await migrate(url, "0005")
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO triggers (trigger_id, project_id, name, kind, target, webhook,"
                    " webhook_secret, paused, metadata, created_at, updated_at) VALUES"
                    " ('trg_old', 'default', 'old', 'webhook', '{\"agent\": \"echo\"}', '{}',"
                    " :secret, false, '{}', :at, :at)"
                ),
                {"secret": PLAIN, "at": T0},
            )
    finally:
        await engine.dispose()
    return url


async def test_the_migration_seals_plaintext_secrets(tmp_path: Path) -> None:
    url = await _store_before_sealing(tmp_path)

    await migrate(url, secret_box=BOX)

    engine = create_engine(url)
    try:
        factory = session_factory(engine)
        sealed, _ = await _raw_secrets(factory, "trg_old")
        async with factory() as session:
            found = await triggers.find_trigger(session, "trg_old")
    finally:
        await engine.dispose()
    assert is_sealed(sealed)
    assert found is not None and found.signing_secrets(BOX, T0) == [PLAIN]
    assert PLAIN.encode() not in _database_bytes(url)


async def test_the_migration_needs_the_key_to_seal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = await _store_before_sealing(tmp_path)
    monkeypatch.delenv("TETHER_SECRETS_KEY", raising=False)

    with pytest.raises(SecretsKeyError, match="TETHER_SECRETS_KEY is not set"):
        await migrate(url)


def _database_bytes(url: str) -> bytes:
    """The SQLite database file with its write-ahead log: everything written to disk."""
    path = Path(make_url(url).database or "")
    files = [path, path.with_name(path.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


# Through the API.


async def _fire(
    client: httpx.AsyncClient, trigger_id: str, secret: str, event_id: str
) -> httpx.Response:
    body = json.dumps({"text": "hi"}).encode()
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Tether-Timestamp": str(stamp),
        "X-Tether-Signature": sign(secret, stamp, body),
        "X-Tether-Event-Id": event_id,
    }
    return await client.post(f"/v1/triggers/{trigger_id}/fire", content=body, headers=headers)


async def test_a_created_secret_is_nowhere_in_the_database_file(stack: Stack) -> None:
    async with stack.client() as client:
        created = await client.post(
            "/v1/triggers",
            json={
                "name": "sealed",
                "kind": "webhook",
                "target": {"agent": "echo", "input": "{{ payload.text }}"},
                "webhook": {"secret": PLAIN + uuid.uuid4().hex},
            },
        )
        assert created.status_code == 201, created.text
        trigger = created.json()
        fired = await _fire(client, trigger["trigger_id"], trigger["secret"], "e-sealed")

    assert fired.status_code == 202, fired.text  # the sealed secret still verifies
    assert trigger["secret"].encode() not in _database_bytes(stack.database_url)


async def test_rotation_accepts_both_secrets_during_the_overlap_only(stack: Stack) -> None:
    async with stack.client() as client:
        created = await client.post(
            "/v1/triggers",
            json={
                "name": "rotating",
                "kind": "webhook",
                "target": {"agent": "echo", "input": "{{ payload.text }}"},
            },
        )
        assert created.status_code == 201, created.text
        trigger_id, first = created.json()["trigger_id"], created.json()["secret"]

        before = datetime.now(UTC)
        rotated = await client.post(
            f"/v1/triggers/{trigger_id}/rotate-secret", json={"overlap_s": 3600}
        )
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()["secret"]
        until = datetime.fromisoformat(rotated.json()["previous_valid_until"])
        assert second != first and second.startswith("whsec_")
        assert before + timedelta(minutes=59) < until < before + timedelta(minutes=61)
        during = [
            (await _fire(client, trigger_id, first, "e-old")).status_code,
            (await _fire(client, trigger_id, second, "e-new")).status_code,
        ]
        read = await client.get(f"/v1/triggers/{trigger_id}")

        # The overlap ends now: only the newest secret signs.
        ended = await client.post(f"/v1/triggers/{trigger_id}/rotate-secret", json={"overlap_s": 0})
        assert ended.status_code == 200, ended.text
        third = ended.json()["secret"]
        assert ended.json()["previous_valid_until"] is None
        after = [
            (await _fire(client, trigger_id, first, "e-after-1")).status_code,
            (await _fire(client, trigger_id, second, "e-after-2")).status_code,
            (await _fire(client, trigger_id, third, "e-after-3")).status_code,
        ]

    assert during == [202, 202]
    assert "secret" not in read.json() and second not in read.text
    assert after == [401, 401, 202]
    assert third.encode() not in _database_bytes(stack.database_url)


async def test_rotate_secret_refusals(stack: Stack) -> None:
    async with stack.client() as client:
        webhook = await client.post(
            "/v1/triggers",
            json={"name": "w", "kind": "webhook", "target": {"agent": "echo", "input": "x"}},
        )
        schedule = await client.post(
            "/v1/triggers",
            json={
                "name": "s",
                "kind": "schedule",
                "target": {"agent": "echo", "input": "x"},
                "schedule": {"interval_s": 3600},
                "paused": True,
            },
        )
        webhook_id, schedule_id = webhook.json()["trigger_id"], schedule.json()["trigger_id"]
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        answers = {
            "schedule": await client.post(f"/v1/triggers/{schedule_id}/rotate-secret"),
            "unknown": await client.post("/v1/triggers/trg_nope/rotate-secret"),
            "both": await client.post(
                f"/v1/triggers/{webhook_id}/rotate-secret",
                json={"overlap_s": 5, "valid_until": soon},
            ),
            "naive": await client.post(
                f"/v1/triggers/{webhook_id}/rotate-secret",
                json={"valid_until": "2030-01-01T00:00:00"},
            ),
            "negative": await client.post(
                f"/v1/triggers/{webhook_id}/rotate-secret", json={"overlap_s": -1}
            ),
            "extra": await client.post(
                f"/v1/triggers/{webhook_id}/rotate-secret", json={"secret": "mine-0123456789abc"}
            ),
        }
        default = await client.post(f"/v1/triggers/{webhook_id}/rotate-secret")
        await client.delete(f"/v1/triggers/{schedule_id}")

    assert {k: r.status_code for k, r in answers.items()} == {
        "schedule": 409,
        "unknown": 404,
        "both": 422,
        "naive": 422,
        "negative": 422,
        "extra": 422,
    }
    assert answers["schedule"].json()["error"]["code"] == "not_a_webhook"
    assert default.status_code == 200
    until = datetime.fromisoformat(default.json()["previous_valid_until"])
    assert until > datetime.now(UTC) + timedelta(hours=23)  # TETHER_WEBHOOK_SECRET_OVERLAP_S


def test_the_api_refuses_to_start_without_a_secrets_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["TETHER_DATA_DIR"] = str(tmp_path)
    argv = [sys.executable, "-m", "uvicorn", "--factory", "api.main:app"]
    started = subprocess.run(
        [*argv, "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert started.returncode != 0
    assert "TETHER_SECRETS_KEY is not set" in started.stderr
