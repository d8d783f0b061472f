"""Secrets at rest: AES-256-GCM under a key from the settings, the key's ID kept with each value.

A sealed value reads ``sealed:v1:<key id>:<base64url(nonce | ciphertext | tag)>``. The key ID
(the first 8 hex digits of the key's SHA-256) says which key opens it, so the key can be rotated:
``TETHER_SECRETS_KEY`` seals, and ``TETHER_SECRETS_PREVIOUS_KEYS`` still open what older keys
sealed until everything was sealed again (``tether migrate`` does that). Each value is sealed for
a context (for a webhook secret, its trigger's ID) given as associated data, so a sealed value
copied onto another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tether.settings import Settings

PREFIX = "sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SecretsKeyError(Exception):
    """The secrets key is missing or unusable, or a sealed value cannot be opened."""


def new_key() -> str:
    """A fresh key for ``TETHER_SECRETS_KEY``: 32 random bytes, base64url."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()


def parse_key(text: str) -> bytes:
    """The 32 key bytes of ``text`` (base64 or base64url, padding optional)."""
    cleaned = text.strip().replace("+", "-").replace("/", "_")
    try:
        key = base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretsKeyError(
            "a secrets key must be 32 random bytes in base64, e.g. `openssl rand -base64 32`"
        )
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class SecretBox:
    """Seals with the current key; opens with the current or any previous key."""

    def __init__(self, current: bytes, previous: Sequence[bytes] = ()) -> None:
        self.key_id = key_id(current)
        self._current = AESGCM(current)
        self._keys = {key_id(k): AESGCM(k) for k in previous}
        self._keys[self.key_id] = self._current

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of ``TETHER_SECRETS_KEY`` and ``TETHER_SECRETS_PREVIOUS_KEYS``; raises
        ``SecretsKeyError`` if the key is not set (there is no default: ``tether dev``
        generates one into its data dir)."""
        if settings.secrets_key is None or not settings.secrets_key.get_secret_value().strip():
            raise SecretsKeyError(
                "TETHER_SECRETS_KEY is not set: it encrypts webhook secrets at rest. Generate "
                "one with `openssl rand -base64 32` and give the same one to every API process"
            )
        previous = settings.secrets_previous_keys.get_secret_value().split(",")
        return cls(
            parse_key(settings.secrets_key.get_secret_value()),
            [parse_key(p) for p in previous if p.strip()],
        )

    @classmethod
    def from_settings_if_set(cls, settings: Settings) -> SecretBox | None:
        return cls.from_settings(settings) if settings.secrets_key is not None else None

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext.encode(), context.encode())
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{PREFIX}{self.key_id}:{body}"

    def open(self, sealed: str, context: str) -> str:
        if not is_sealed(sealed):
            raise SecretsKeyError("the value is not sealed")
        kid, _, body = sealed.removeprefix(PREFIX).partition(":")
        key = self._keys.get(kid)
        if key is None:
            raise SecretsKeyError(
                f"the value was sealed with key {kid}, which is neither TETHER_SECRETS_KEY nor "
                "one of TETHER_SECRETS_PREVIOUS_KEYS"
            )
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            return key.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode()).decode()
        except InvalidTag:
            raise SecretsKeyError(f"the value does not open for {context!r}") from None

    def is_current(self, sealed: str) -> bool:
        """Whether ``sealed`` is sealed with the current key (nothing to do on rotation)."""
        return sealed.startswith(f"{PREFIX}{self.key_id}:")
