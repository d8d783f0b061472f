"""The payload codec: AES-GCM with key IDs and rotation (unit tests); the API's codec endpoint
the Temporal UI calls; and end to end: with encryption on, Temporal's database holds none of a
run's input, transcript, answer or output."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads, SearchAttributes
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from tests.api_helpers import wait_for_pending_interaction, wait_for_run
from tests.fixtures_db import migrated_database
from tether.codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadDecryptError,
    PayloadKeyError,
    PayloadKeys,
    new_key_entry,
)
from tether.devstack.processes import Service, free_port, venv_binary, wait_http
from tether.devstack.stack import Stack
from tether.devstack.supervisor import dev_payload_keys, temporal_argv, wait_temporal
from tether.ids import session_workflow_id
from tether.settings import Settings
from tether.temporal import data_converter


def _codec(text: str) -> EncryptionCodec:
    keys = PayloadKeys.parse(text)
    assert keys is not None
    return EncryptionCodec(keys)


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


OLD, NEW = new_key_entry("old"), new_key_entry("new")


async def test_a_payload_round_trips_and_is_ciphertext_in_between() -> None:
    codec = _codec(OLD)
    original = _payload("the secret plan")
    [encrypted] = await codec.encode([original])
    assert encrypted.metadata["encoding"] == ENCODING
    assert encrypted.metadata[KEY_ID] == b"old"
    assert b"secret" not in encrypted.SerializeToString()
    [decrypted] = await codec.decode([encrypted])
    assert decrypted == original


async def test_each_payload_gets_its_own_nonce() -> None:
    codec = _codec(OLD)
    first, second = await codec.encode([_payload("same"), _payload("same")])
    assert first.data != second.data
    assert first.data[:12] != second.data[:12]


async def test_old_payloads_decode_after_a_new_key_becomes_current() -> None:
    [before] = await _codec(OLD).encode([_payload("written under old")])
    rotated = _codec(f"{NEW},{OLD}")
    [after] = await rotated.encode([_payload("written under new")])
    assert after.metadata[KEY_ID] == b"new"
    assert await rotated.decode([before, after]) == [
        _payload("written under old"),
        _payload("written under new"),
    ]
    # Once the old key is dropped, what it encrypted no longer decodes, and says why.
    with pytest.raises(PayloadDecryptError, match=r"key ID 'old'.*known: new"):
        await _codec(NEW).decode([before])


async def test_an_unknown_key_id_fails_clearly() -> None:
    [encrypted] = await _codec(new_key_entry("elsewhere")).encode([_payload("x")])
    with pytest.raises(PayloadDecryptError, match=r"'elsewhere', which is not in TETHER_PAYLOAD"):
        await _codec(OLD).decode([encrypted])


async def test_tampering_fails_authentication() -> None:
    codec = _codec(OLD)
    [encrypted] = await codec.encode([_payload("pay 10 EUR")])
    flipped = bytearray(encrypted.data)
    flipped[-1] ^= 0x01
    tampered = Payload(metadata=dict(encrypted.metadata), data=bytes(flipped))
    with pytest.raises(PayloadDecryptError, match="fails authentication"):
        await codec.decode([tampered])
    # The key ID is authenticated too: relabelling a payload with another known key fails.
    both = _codec(f"{OLD},{new_key_entry('other')}")
    [sealed] = await both.encode([_payload("x")])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID: b"other"}, data=sealed.data)
    with pytest.raises(PayloadDecryptError, match="fails authentication"):
        await both.decode([relabelled])


async def test_the_same_key_id_with_other_key_material_fails_authentication() -> None:
    [encrypted] = await _codec(new_key_entry("k")).encode([_payload("x")])
    with pytest.raises(PayloadDecryptError, match="fails authentication"):
        await _codec(new_key_entry("k")).decode([encrypted])


async def test_payloads_written_in_clear_decode_as_they_are() -> None:
    plain = _payload("recorded before encryption was on")
    assert await _codec(OLD).decode([plain]) == [plain]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nokey", "kid:base64key"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "kid:base64key"),
        ("k:not-base64!", "not valid base64"),
        ("k:" + base64.b64encode(bytes(16)).decode(), "16 bytes; AES-256 needs 32"),
        (f"{OLD},{OLD}", "twice"),
    ],
)
def test_malformed_keys_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(PayloadKeyError, match=message):
        PayloadKeys.parse(text)


def test_no_keys_means_no_codec_and_the_first_key_is_current() -> None:
    assert PayloadKeys.parse("") is None
    assert data_converter(Settings(payload_keys="")).payload_codec is None
    keys = PayloadKeys.parse(f" {NEW} , {OLD} ")
    assert keys is not None and keys.current == "new" and set(keys.keys) == {"new", "old"}


async def test_the_data_converter_encrypts_values_and_failure_messages() -> None:
    converter = data_converter(Settings(payload_keys=OLD))
    [payload] = await converter.encode([{"input": "the secret plan"}])
    assert payload.metadata["encoding"] == ENCODING
    assert await converter.decode([payload], [dict]) == [{"input": "the secret plan"}]
    failure = Failure()
    await converter.encode_failure(RuntimeError("leaked the secret plan"), failure)
    assert "secret" not in failure.message
    assert b"secret" not in failure.SerializeToString()
    assert "secret plan" in str(await converter.decode_failure(failure))


def test_the_dev_stack_generates_a_key_once_and_keeps_it(tmp_path: Path) -> None:
    first = dev_payload_keys(Settings(payload_keys=""), tmp_path)
    keys = PayloadKeys.parse(first["TETHER_PAYLOAD_KEYS"])
    assert keys is not None and keys.current == "dev-1"
    assert (tmp_path / "payload-keys").stat().st_mode & 0o777 == 0o600
    # A restart reuses it: what the first start encrypted still decodes.
    assert dev_payload_keys(Settings(payload_keys=""), tmp_path) == first
    # A configured key wins, and the processes read it from the settings themselves.
    assert dev_payload_keys(Settings(payload_keys=OLD), tmp_path / "elsewhere") == {}
    (tmp_path / "payload-keys").write_text("dev-1:not a key\n")
    with pytest.raises(PayloadKeyError, match="not valid base64"):
        dev_payload_keys(Settings(payload_keys=""), tmp_path)


# The codec endpoint (the Temporal remote codec protocol: proto3 JSON, bytes as base64).


def _wire(*payloads: Payload) -> dict:
    return json_format.MessageToDict(Payloads(payloads=payloads))


def _unwire(body: dict) -> list[Payload]:
    return list(json_format.ParseDict(body, Payloads()).payloads)


UI = {"Origin": "http://127.0.0.1:8233"}  # the dev server's UI, the default allowed origin


async def test_the_codec_endpoint_encodes_and_decodes_with_the_stacks_key(stack: Stack) -> None:
    plain = _payload("what the UI shows")
    async with stack.client() as client:
        encoded = await client.post(
            "/codec/encode", json=_wire(plain), headers={"X-Namespace": "default", **UI}
        )
        assert encoded.status_code == 200, encoded.text
        assert encoded.headers["access-control-allow-origin"] == UI["Origin"]
        [sealed] = _unwire(encoded.json())
        assert sealed.metadata["encoding"] == ENCODING
        # What the endpoint encrypts, the workers' codec reads, and back.
        codec = stack.data_converter().payload_codec
        assert codec is not None and await codec.decode([sealed]) == [plain]
        [from_worker] = await codec.encode([plain])
        decoded = await client.post("/codec/decode", json=_wire(from_worker, plain))
        assert decoded.status_code == 200, decoded.text
        assert _unwire(decoded.json()) == [plain, plain]  # clear payloads come back as they are


async def test_the_codec_endpoint_refuses_what_it_cannot_decode(stack: Stack) -> None:
    [foreign] = await _codec(new_key_entry("elsewhere")).encode([_payload("x")])
    async with stack.client() as client:
        unknown = await client.post("/codec/decode", json=_wire(_payload("ok"), foreign))
        assert unknown.status_code == 422
        error = unknown.json()["error"]
        assert error["code"] == "payload_not_decodable" and error["details"] == {"index": 1}
        assert "'elsewhere', which is not in TETHER_PAYLOAD_KEYS" in error["message"]

        codec = stack.data_converter().payload_codec
        assert codec is not None
        [sealed] = await codec.encode([_payload("x")])
        tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + b"\0")
        altered = await client.post("/codec/decode", json=_wire(tampered))
        assert altered.status_code == 422 and "fails authentication" in altered.text

        not_base64 = await client.post(
            "/codec/decode", json={"payloads": [{"metadata": {}, "data": "%%%"}]}
        )
        assert not_base64.status_code == 422 and "data is not base64" in not_base64.text
        not_payloads = await client.post("/codec/decode", json={"items": []})
        assert not_payloads.status_code == 422

        other = await client.post(
            "/codec/decode", json=_wire(_payload("x")), headers={"X-Namespace": "other"}
        )
        assert other.status_code == 400
        assert other.json()["error"]["code"] == "namespace_not_served"


async def test_only_the_codec_answers_cors_and_only_to_the_ui_origin(stack: Stack) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace",
    }
    async with stack.client() as client:
        allowed = await client.options("/codec/decode", headers={**UI, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == UI["Origin"]
        assert "x-namespace" in allowed.headers["access-control-allow-headers"].lower()

        stranger = {"Origin": "http://evil.example", **preflight}
        refused = await client.options("/codec/decode", headers=stranger)
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers
        decoded = await client.post(
            "/codec/decode", json=_wire(_payload("x")), headers={"Origin": "http://evil.example"}
        )
        assert "access-control-allow-origin" not in decoded.headers

        # The rest of the API gives the UI's page nothing.
        runs = await client.get("/v1/runs", headers=UI)
        assert runs.status_code == 200
        assert "access-control-allow-origin" not in runs.headers


# End to end: a dev server with a database file we can read, as `tether dev` runs it.


def _payloads_in(message: Message) -> list[Payload]:
    """Every payload in a history event, except search attributes (the server indexes those in
    clear by design)."""
    if isinstance(message, Payload):
        return [message]
    if isinstance(message, SearchAttributes):
        return []
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            found += _payloads_in(value)
        elif field.message_type.GetOptions().map_entry:  # a map: its values
            found += [p for item in value.values() for p in _payloads_in(item)]
        else:  # a repeated field
            found += [p for item in value for p in _payloads_in(item)]
    return found


# Markers the SDK writes in clear, by the detail that holds its bookkeeping: a local activity's
# (sequence number, activity type, times) and a patch's (the patch ID of ``workflow.patched``).
SDK_MARKER_DETAILS = ("data", "patch-data")


def _ours(event: HistoryEvent) -> HistoryEvent:
    """The event without the SDK's own bookkeeping in markers, which it writes in clear."""
    marker = event.marker_recorded_event_attributes
    if event.HasField("marker_recorded_event_attributes"):
        event = HistoryEvent.FromString(event.SerializeToString())
        for key in SDK_MARKER_DETAILS:
            if key in marker.details:
                del event.marker_recorded_event_attributes.details[key]
    return event


def _payload_bytes(history_json: Any) -> bytes:
    """The data of every payload in a history as JSON (``temporal workflow show -o json``)."""
    if isinstance(history_json, list):
        return b"".join(_payload_bytes(item) for item in history_json)
    if not isinstance(history_json, dict):
        return b""
    if isinstance(history_json.get("metadata"), dict) and "data" in history_json:
        return base64.b64decode(history_json["data"])
    return b"".join(_payload_bytes(value) for value in history_json.values())


def _database_bytes(db_file: Path) -> bytes:
    """The dev server's SQLite file and its write-ahead log, as they are on disk."""
    wal = db_file.with_name(db_file.name + "-wal")
    return db_file.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


FileBacked = tuple[Stack, Path, Settings]


@pytest.fixture
async def file_temporal(tmp_path: Path) -> AsyncIterator[FileBacked]:
    """A Temporal dev server started as ``tether dev`` starts it (``temporal_argv``: its
    database in a file, its UI pointed at the codec of ``stack``), and a stack for it, not
    started; the stack encrypts payloads."""
    db_file = tmp_path / "temporal.db"
    settings = Settings(temporal_address=f"127.0.0.1:{free_port()}", temporal_ui_port=free_port())
    async with migrated_database("sqlite", tmp_path) as url:
        stack = Stack(
            temporal_address=settings.temporal_address, database_url=url, workdir=tmp_path
        )
        settings.public_api_url = stack.api_url
        temporal = Service(
            "temporal", temporal_argv(settings, db_file), {}, tmp_path / "logs" / "temporal.log"
        ).start()
        try:
            await wait_temporal(settings, temporal)
            yield stack, db_file, settings
        finally:
            temporal.stop()


@pytest.fixture
async def file_backed(file_temporal: FileBacked) -> AsyncIterator[FileBacked]:
    """``file_temporal`` with its stack started."""
    stack = file_temporal[0]
    await stack.start()
    try:
        yield file_temporal
    finally:
        stack.stop()


async def test_temporals_database_holds_no_plaintext_of_a_run(file_backed: FileBacked) -> None:
    stack, db_file, settings = file_backed
    marker = f"plaintext-marker-{uuid.uuid4().hex}"
    steps = [
        {"emit": "message.delta", "data": {"text": f"event {marker}"}},
        {"ask": {"kind": "input", "prompt": f"prompt {marker}?"}},
        {"output": f"output {marker}"},
    ]
    async with stack.client() as client:
        started = await client.post(
            "/v1/runs",
            json={"agent": "scripted", "input": {"steps": steps, "note": f"input {marker}"}},
        )
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        interaction = await wait_for_pending_interaction(client, run_id)
        assert interaction["prompt"] == f"prompt {marker}?"
        answered = await client.post(
            f"/v1/interactions/{interaction['interaction_id']}/respond",
            json={"response": {"text": f"answer {marker}"}},
        )
        assert answered.status_code == 202, answered.text
        run = await wait_for_run(client, run_id, {"completed"})

        # Through the API the run reads as always.
        assert run["input"]["note"] == f"input {marker}"
        assert run["result"]["output"] == f"output {marker}"
        events = (await client.get(f"/v1/runs/{run_id}/events")).json()["events"]
        assert {"text": f"event {marker}"} in [e["data"] for e in events]

        # Temporal's database has the run (its ID is a search attribute, in clear) and no
        # trace of the marker.
        raw = _database_bytes(db_file)
        assert run_id.encode() in raw
        assert marker.encode() not in raw

        # Every payload of the history is ciphertext; the codec endpoint reads them.
        plain_client = await Client.connect(settings.temporal_address)  # no codec: raw bytes
        handle = plain_client.get_workflow_handle(
            session_workflow_id(run["project_id"], run["session_id"])
        )
        history = await handle.fetch_history()
        payloads = [p for event in history.events for p in _payloads_in(_ours(event))]
        assert payloads and {p.metadata["encoding"] for p in payloads} == {ENCODING}
        decoded = await client.post(
            "/codec/decode", json=_wire(*payloads), headers={"X-Namespace": "default"}
        )
        assert decoded.status_code == 200, decoded.text
        clear = b"".join(p.data for p in _unwire(decoded.json()))
        for part in ("input", "event", "prompt", "answer", "output"):
            assert f"{part} {marker}".encode() in clear

    # Temporal's own CLI, pointed at the codec endpoint, shows the history in clear.
    cli = await asyncio.create_subprocess_exec(
        venv_binary("temporal"),
        "workflow",
        "show",
        "--workflow-id",
        handle.id,
        "--output",
        "json",
        "--address",
        settings.temporal_address,
        "--codec-endpoint",
        f"{stack.api_url}/codec",
        "--codec-auth",
        f"Bearer {stack.api_key}",  # the codec needs a key like every other route
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0, stderr.decode()
    shown = _payload_bytes(json.loads(stdout))
    for part in ("input", "answer", "output"):
        assert f"{part} {marker}".encode() in shown
    assert base64.b64encode(ENCODING).decode() not in stdout.decode()  # none left encrypted

    # The UI of the dev server, started as `tether dev` starts it, decodes through the API.
    async with httpx.AsyncClient() as ui:
        await wait_http(f"http://127.0.0.1:{settings.temporal_ui_port}/api/v1/settings")
        ui_settings = (
            await ui.get(f"http://127.0.0.1:{settings.temporal_ui_port}/api/v1/settings")
        ).json()
    assert ui_settings["Codec"]["Endpoint"] == f"{stack.api_url}/codec"


async def test_without_the_codec_the_same_grep_finds_payloads(file_temporal: FileBacked) -> None:
    """The check above can fail: a payload written without the codec is in the file in clear."""
    _, db_file, settings = file_temporal
    marker = f"plaintext-marker-{uuid.uuid4().hex}"
    plain_client = await Client.connect(settings.temporal_address)
    handle = await plain_client.start_workflow(
        "NobodyRunsThis", f"input {marker}", id=f"control-{marker}", task_queue="nobody"
    )
    try:
        assert marker.encode() in _database_bytes(db_file)
    finally:
        await handle.terminate()
