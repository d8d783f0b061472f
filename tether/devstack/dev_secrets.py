"""Secrets of the dev stack: generated into the data dir on first start, reused after.

Outside ``tether dev`` nothing has a usable default: a deployment sets ``TETHER_SECRETS_KEY``
itself. The dev stack, which binds loopback addresses, keeps a random key in
``<data dir>/secrets.key`` (mode 0600) so that ``make run`` needs no set-up and a restart still
opens the webhook secrets it sealed before.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import SecretStr

from tether.secret_box import new_key
from tether.settings import Settings

SECRETS_KEY_FILE = "secrets.key"


def _read_or_create(path: Path, create: bool) -> str | None:
    if path.is_file():
        return path.read_text().strip()
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = new_key()
    # O_EXCL: two dev stacks starting at once never overwrite each other's key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")
    return value


def with_dev_secrets(settings: Settings, *, create: bool) -> tuple[Settings, dict[str, str]]:
    """``settings`` with the dev stack's secrets filled in where none is configured, and the
    environment that hands them to the stack's processes. ``create``: generate the missing
    ones (``tether dev``); otherwise only reuse those a dev stack made (``tether migrate``)."""
    if settings.secrets_key is not None:
        return settings, {}
    key = _read_or_create(settings.data_dir / SECRETS_KEY_FILE, create)
    if key is None:
        return settings, {}
    updated = settings.model_copy(update={"secrets_key": SecretStr(key)})
    return updated, {"TETHER_SECRETS_KEY": key}
