"""Every identifier Tether makes: project, run, session, trigger and API key IDs, and the
Temporal workflow and schedule IDs built from them. One builder each, so no module spells an
ID by hand."""

from __future__ import annotations

import hashlib
import re
import secrets
import string

import uuid_utils

# Client-chosen names: session IDs, agent names.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
SESSION_ID_PATTERN = NAME_PATTERN
_session_id_re = re.compile(SESSION_ID_PATTERN)


# Project IDs hold no ``.``: ``session-{project}.{session}`` splits at its first dot, so a
# session workflow ID names exactly one (project, session) pair.
PROJECT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_project_id_re = re.compile(PROJECT_ID_PATTERN)


def is_valid_project_id(value: str) -> bool:
    return bool(_project_id_re.match(value))


def new_run_id() -> str:
    """``run_`` + UUIDv7: unique, and sorts by creation time."""
    return f"run_{uuid_utils.uuid7().hex}"


def new_session_id() -> str:
    return f"s_{uuid_utils.uuid7().hex}"


def session_for_key(project_id: str, idempotency_key: str) -> str:
    """The session of an idempotent ``POST /v1/runs``: the same key always lands in it."""
    digest = hashlib.sha256(f"{project_id}\x00{idempotency_key}".encode()).hexdigest()
    return f"s_key_{digest[:32]}"


def is_valid_session_id(value: str) -> bool:
    return bool(_session_id_re.match(value))


def session_workflow_id(project_id: str, session_id: str) -> str:
    """The workflow ID of a session's runs: one open execution per session is the owner lock.

    ``session-{project}.{session}``: two projects may use the same session ID. Unambiguous
    because a project ID has no ``.`` (``PROJECT_ID_PATTERN``)."""
    return f"session-{project_id}.{session_id}"


def legacy_session_workflow_id(session_id: str) -> str:
    """The workflow ID sessions had before it carried the project, ``session-{session_id}``:
    signals still reach an execution started under it before an upgrade."""
    return f"session-{session_id}"


# Triggers. A firing's IDs are derived from its trigger and event ID, so every duplicate of a
# firing (a re-sent webhook, a retried activity) names the same delivery, run and session.


def new_trigger_id() -> str:
    return f"trg_{uuid_utils.uuid7().hex}"


def _firing_digest(trigger_id: str, event_id: str) -> str:
    return hashlib.sha256(f"{trigger_id}\x00{event_id}".encode()).hexdigest()


def delivery_id_for(trigger_id: str, event_id: str) -> str:
    return f"dlv_{_firing_digest(trigger_id, event_id)[:32]}"


def firing_run_id(trigger_id: str, event_id: str) -> str:
    """The run a firing starts (``run_`` + 32 hex digits, like every run ID's length)."""
    return f"run_{_firing_digest(trigger_id, event_id)[32:]}"


def firing_session_id(trigger_id: str, event_id: str) -> str:
    """The new session of a firing whose trigger starts one per firing."""
    return f"{trigger_id}-{_firing_digest(trigger_id, event_id)[:16]}"


def firing_workflow_id(trigger_id: str, event_id: str | None = None) -> str:
    """``firing-{trigger}-{event}``. Without an event: the schedule action's ID, to which
    Temporal appends the scheduled time (``…-2026-01-01T00:05:00Z``)."""
    base = f"firing-{trigger_id}"
    return base if event_id is None else f"{base}-{event_id}"


def schedule_id(trigger_id: str) -> str:
    return f"trigger-{trigger_id}"


def catalog_workflow_id(task_queue: str) -> str:
    """One agent catalogue per task queue: the runners a queue's workers reach."""
    return f"tether-agent-catalog-{task_queue}"


# API keys: ``tk_<key ID>_<secret>``. The key ID is the visible, stored part that finds the
# key; the secret is 256 random bits, stored only inside the token's hash.

KEY_TOKEN_PREFIX = "tk_"
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_ID_LENGTH = 8
_key_token_re = re.compile(r"^tk_([a-z0-9]{8})_([A-Za-z0-9_-]{32,128})$")


def new_key_id() -> str:
    return "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(_KEY_ID_LENGTH))


def new_key_token(key_id: str) -> str:
    """A fresh token for the key ``key_id``: shown once, stored only as its hash."""
    return f"{KEY_TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_token_prefix(key_id: str) -> str:
    """The visible part of a key's tokens (``tk_<key ID>``), safe to list and log."""
    return f"{KEY_TOKEN_PREFIX}{key_id}"


def key_id_of_token(token: str) -> str | None:
    """The key ID a token names, or ``None`` if it is not shaped like a Tether key."""
    match = _key_token_re.match(token)
    return match.group(1) if match else None
