"""The payload codec: AES-GCM with key IDs and rotation (unit tests), and end to end: with
encryption on, Temporal's database holds none of a run's input, transcript, answer or output."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure

from tether.codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadDecryptError,
    PayloadKeyError,
    PayloadKeys,
    new_key_entry,
)
from tether.devstack.supervisor import dev_payload_keys
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
