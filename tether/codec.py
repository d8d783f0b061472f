"""The payload codec: what Temporal stores of our payloads is AES-256-GCM ciphertext.

Every client and worker gets it through ``tether.temporal.connect`` (the pydantic converter
plus this codec), so run inputs, transcripts in activity results, answers, outputs, summaries,
memos and failure messages reach Temporal's history encrypted. Search attributes stay clear:
the server must read them to answer list queries.

An encrypted payload is ``nonce (12 bytes) || ciphertext+tag`` of the whole original payload
(metadata and data), with the metadata ``encoding: binary/encrypted`` and
``encryption-key-id: <kid>``; the key ID is authenticated as associated data, so swapping it
fails. Keys come from ``TETHER_PAYLOAD_KEYS`` (``kid:base64key,kid:base64key``): the first
encrypts, every one decrypts, which is how a key is rotated. Payloads that are not encrypted
decode as they are: histories written before encryption was turned on keep replaying.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from tether.settings import Settings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PayloadKeyError(ValueError):
    """``TETHER_PAYLOAD_KEYS`` is malformed."""


class PayloadDecryptError(ValueError):
    """A payload cannot be decrypted: unknown key ID, or it fails authentication."""


@dataclass(frozen=True)
class PayloadKeys:
    """The keys the codec knows, by key ID; ``current`` encrypts."""

    current: str
    keys: Mapping[str, bytes]

    @classmethod
    def parse(cls, text: str) -> PayloadKeys | None:
        """``kid:base64key,kid:base64key`` (first = current); None when ``text`` is empty."""
        keys: dict[str, bytes] = {}
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            kid, sep, encoded = entry.partition(":")
            kid = kid.strip()
            if not sep or not _KID.fullmatch(kid):
                raise PayloadKeyError(
                    "TETHER_PAYLOAD_KEYS entries are kid:base64key, the key ID made of "
                    f"letters, digits, '.', '_', '-' (got an entry starting {entry[:8]!r})"
                )
            if kid in keys:
                raise PayloadKeyError(f"TETHER_PAYLOAD_KEYS lists key ID {kid!r} twice")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error as err:
                raise PayloadKeyError(f"payload key {kid!r} is not valid base64") from err
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"payload key {kid!r} is {len(key)} bytes; AES-256 needs {KEY_BYTES}"
                )
            keys[kid] = key
        if not keys:
            return None
        return cls(current=next(iter(keys)), keys=keys)


def new_key_entry(kid: str) -> str:
    """A fresh ``kid:base64key`` entry for ``TETHER_PAYLOAD_KEYS``."""
    if not _KID.fullmatch(kid):
        raise PayloadKeyError(f"not a valid key ID: {kid!r}")
    return f"{kid}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"


class EncryptionCodec(PayloadCodec):
    """AES-GCM with a random nonce per payload; decrypts with any known key."""

    def __init__(self, keys: PayloadKeys) -> None:
        self._current = keys.current
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        kid = self._current.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), kid)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: kid}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written in clear (before encryption was on): as it is
        kid = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            known = ", ".join(sorted(self._ciphers))
            raise PayloadDecryptError(
                f"payload encrypted with key ID {kid!r}, which is not in TETHER_PAYLOAD_KEYS "
                f"(known: {known})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], kid.encode())
        except InvalidTag as err:
            raise PayloadDecryptError(
                f"payload encrypted with key ID {kid!r} fails authentication: altered, "
                "or the key under that ID is not the one that encrypted it"
            ) from err
        return Payload.FromString(plain)


def codec_from_settings(settings: Settings) -> EncryptionCodec | None:
    """The codec of ``TETHER_PAYLOAD_KEYS``; None when no key is configured (encryption off)."""
    keys = PayloadKeys.parse(settings.payload_keys.get_secret_value())
    return EncryptionCodec(keys) if keys else None
