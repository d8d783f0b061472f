"""Who is calling: an API key resolved to a ``Principal``, and the role every route declares.

A client sends ``Authorization: Bearer tk_…`` (or ``X-Api-Key: tk_…``). ``authenticate`` finds
the key in the store on every request (no cache, so a revoked key is refused on the next
request) and answers ``401`` for a missing, malformed, unknown, revoked or expired key. Each
route declares what it needs with exactly one of:

- ``VIEWER``, ``OPERATOR``, ``ADMIN`` (``Depends(Requires(role))``): a key of at least that
  role, else ``403``; or the ``ViewerDep``/``OperatorDep``/``AdminDep`` parameter forms, which
  also hand the route the principal;
- ``OPEN``: no key (health probes);
- ``KEY_IF_SENT``: a key is checked if one is sent (webhook firing: signed webhooks carry no
  key, "fire now" of a schedule needs an admin key).

The project of a request is the key's project (``ProjectDep`` in ``api.deps``), so a route can
only ever see its own project's rows: another project's run is a plain ``404``.

``TETHER_AUTH_DISABLED=true`` makes every request an admin of the default project, and is
refused unless the API binds a loopback address (``check_auth_settings``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from store import keys
from store.keys import Role
from tether.settings import Settings, is_loopback

_bearer = HTTPBearer(auto_error=False, description="an API key: `Bearer tk_…`")
_api_key_header = APIKeyHeader(
    name="X-Api-Key", auto_error=False, description="an API key, instead of `Authorization`"
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """The caller: the project and role of its key, and the key's name (the audit actor)."""

    project_id: str
    role: Role
    key_id: str | None
    key_name: str | None

    @property
    def actor(self) -> str | None:
        """Who to record as having answered or cancelled: the key's name."""
        return self.key_name


def unauthenticated(message: str, code: str = "invalid_api_key") -> ApiError:
    return ApiError(401, code, message, headers=_CHALLENGE)


def check_auth_settings(settings: Settings) -> None:
    """Refuse to serve with auth (or the codec's) off on anything but a loopback address."""
    for name, off in (
        ("AUTH_DISABLED", settings.auth_disabled),
        ("CODEC_OPEN", settings.codec_open),
    ):
        if off and not is_loopback(settings.api_host):
            raise RuntimeError(
                f"TETHER_{name} is only allowed when the API binds a loopback address, "
                f"not {settings.api_host!r}"
            )


def _token(
    bearer: HTTPAuthorizationCredentials | None, api_key: str | None, request: Request
) -> str:
    if bearer is not None:
        return bearer.credentials
    if api_key:
        return api_key
    if "authorization" in request.headers:
        raise unauthenticated("the Authorization header must be `Bearer <API key>`")
    raise unauthenticated(
        "an API key is required: send `Authorization: Bearer <key>`", code="missing_api_key"
    )


async def _resolve(request: Request, token: str) -> Principal:
    now = datetime.now(UTC)
    async with request.app.state.db() as session:
        key = await keys.find_valid_key(session, token, now)
        if key is None:
            raise unauthenticated("the API key is not valid (unknown, revoked or expired)")
        await keys.touch_key(session, key, now)
        await session.commit()
    return Principal(project_id=key.project_id, role=key.role, key_id=key.key_id, key_name=key.name)


def _anonymous(settings: Settings) -> Principal:
    return Principal(
        project_id=settings.default_project_id, role=Role.ADMIN, key_id=None, key_name=None
    )


async def authenticate(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """The caller's principal; ``401`` without a valid key. Resolved once per request."""
    settings: Settings = request.app.state.settings
    if settings.auth_disabled:
        return _anonymous(settings)
    return await _resolve(request, _token(bearer, api_key, request))


async def authenticate_if_sent(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal | None:
    """The caller's principal if it sent a credential (a bad one is still ``401``)."""
    settings: Settings = request.app.state.settings
    if settings.auth_disabled:
        return _anonymous(settings)
    if bearer is None and not api_key and "authorization" not in request.headers:
        return None
    return await _resolve(request, _token(bearer, api_key, request))


def require_role(principal: Principal, needed: Role) -> None:
    if not principal.role.allows(needed):
        raise ApiError(
            403,
            "forbidden",
            f"this needs a key with the role {needed.value} (this key is {principal.role.value})",
            {"required_role": needed.value, "role": principal.role.value},
        )


class Access:
    """A route's declared access rule (the role test reads it from each route)."""

    role: Role | None = None
    key: str = "required"  # required | none | optional


class Requires(Access):
    """A key of at least ``role``: ``401`` without a valid key, ``403`` below the role."""

    def __init__(self, role: Role) -> None:
        self.role = role

    async def __call__(self, principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        assert self.role is not None
        require_role(principal, self.role)
        return principal


class CodecAccess(Requires):
    """``Requires(role)``, unless ``TETHER_CODEC_OPEN`` lets the loopback dev stack's Temporal
    UI (which cannot send a key) through."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        api_key: Annotated[str | None, Depends(_api_key_header)],
    ) -> Principal | None:
        settings: Settings = request.app.state.settings
        if settings.codec_open:
            return None
        principal = await authenticate(request, bearer, api_key)
        assert self.role is not None
        require_role(principal, self.role)
        return principal


class Open(Access):
    """No key: health probes a load balancer calls."""

    key = "none"

    async def __call__(self) -> None:
        return None


class KeyIfSent(Access):
    """A key is optional (the route authenticates some calls another way), checked if sent."""

    key = "optional"

    async def __call__(
        self, principal: Annotated[Principal | None, Depends(authenticate_if_sent)]
    ) -> Principal | None:
        return principal


_viewer, _operator, _admin = Requires(Role.VIEWER), Requires(Role.OPERATOR), Requires(Role.ADMIN)
_open, _key_if_sent = Open(), KeyIfSent()

CODEC_VIEWER = Depends(CodecAccess(Role.VIEWER))
CODEC_OPERATOR = Depends(CodecAccess(Role.OPERATOR))

# For a route's ``dependencies=[...]``.
VIEWER = Depends(_viewer)
OPERATOR = Depends(_operator)
ADMIN = Depends(_admin)
OPEN = Depends(_open)

# For a route parameter, when the route needs the principal itself.
ViewerDep = Annotated[Principal, Depends(_viewer)]
OperatorDep = Annotated[Principal, Depends(_operator)]
AdminDep = Annotated[Principal, Depends(_admin)]
KeyIfSentDep = Annotated[Principal | None, Depends(_key_if_sent)]
