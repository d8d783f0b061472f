"""Webhook signatures: HMAC-SHA256 over the timestamp and the raw body, with a replay window.

A sender signs each request with the trigger's secret::

    X-Tether-Timestamp: <unix seconds>
    X-Tether-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The header has GitHub's ``sha256=<hex>`` shape; the signed timestamp (as Stripe and Slack do)
lets the receiver refuse a captured request replayed outside the window. Several signatures
may be sent, comma-separated, e.g. while a secret is rotated; one valid one is enough. While a
rotation overlaps, the receiver accepts a signature made with either secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Sequence

TIMESTAMP_HEADER = "X-Tether-Timestamp"
SIGNATURE_HEADER = "X-Tether-Signature"
SCHEME = "sha256="


class SignatureError(Exception):
    """Why a request is not authentic; ``code`` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def new_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Tether-Signature`` value of ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.".encode() + body
    return SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(
    secrets: str | Sequence[str],
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    *,
    tolerance_s: float,
    now: float | None = None,
) -> None:
    """Return if the request is authentic and fresh; raise ``SignatureError`` otherwise.

    ``secrets``: every secret valid now (two while a rotation overlaps); a signature made with
    any of them is accepted."""
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    if not candidates or not all(candidates):  # never an empty key: anyone could sign with it
        raise SignatureError("invalid_signature", "the trigger has no signing secret")
    if not timestamp or not signature:
        raise SignatureError(
            "missing_signature", f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required"
        )
    # ASCII digits only: str.isdigit also takes "²", which int() refuses.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise SignatureError("invalid_signature", f"{TIMESTAMP_HEADER} must be unix seconds")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > tolerance_s:
        raise SignatureError(
            "signature_expired",
            f"the timestamp is more than {tolerance_s:g}s away from the server's clock",
        )
    expected = [sign(secret, timestamp, body).encode() for secret in candidates]
    # compare_digest on every pair: no early exit that would leak timing.
    # Bytes: compare_digest refuses non-ASCII text, which a header may carry.
    valid = [
        hmac.compare_digest(e, c.strip().encode()) for e in expected for c in signature.split(",")
    ]
    if not any(valid):
        raise SignatureError("invalid_signature", "the signature does not match the body")
