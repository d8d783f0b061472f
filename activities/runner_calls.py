"""Activities that talk to a runner over the runner protocol (HTTP + NDJSON)."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.follow import Follower
from runner.protocol import (
    CancelRequest,
    DispatchRequest,
    EventType,
    RunEvent,
    RunStartedData,
    auth_headers,
    parse_record,
)
from store import sessions
from tether.settings import Settings
from workflows.errors import ErrorType
from workflows.types import (
    CancelRunInput,
    DeliverInput,
    DispatchInput,
    DispatchResult,
    FollowInput,
    FollowOutcome,
    ProbeInput,
)


class RunActivities:
    """Runner calls of the run workflow; built once per worker with its dependencies."""

    def __init__(
        self,
        db: async_sessionmaker[AsyncSession],
        http: httpx.AsyncClient,
        settings: Settings,
    ) -> None:
        self._db = db
        self._http = http
        self._settings = settings

    def _url(self, path: str) -> str:
        return self._settings.runner_base_url + path

    def _headers(self) -> dict[str, str]:
        return auth_headers(self._settings.runner_token.get_secret_value())

    @activity.defn
    async def dispatch_run(self, inp: DispatchInput) -> DispatchResult:
        """The detach handshake: POST the run, return on the runner's ``run.started`` record.

        The connection is closed right after; the run goes on on the runner.
        """
        async with self._db() as session:
            agent_session_id = await sessions.get_agent_session(
                session, inp.project_id, inp.session_id, inp.agent
            )
        request = DispatchRequest.model_validate(
            {**dict(inp), "attempt": activity.info().attempt, "agent_session_id": agent_session_id}
        )
        async with self._http.stream(
            "POST",
            self._url("/v1/runs"),
            content=request.model_dump_json(),
            headers={**self._headers(), "Content-Type": "application/json"},
        ) as response:
            if response.status_code == 404:
                body = (await response.aread()).decode(errors="replace")
                raise ApplicationError(
                    f"the runner does not know agent {inp.agent!r}",
                    body,
                    type=ErrorType.UNKNOWN_AGENT,
                    non_retryable=True,
                )
            if response.status_code in (401, 403):
                raise ApplicationError(
                    f"the runner refused our token ({response.status_code})",
                    type=ErrorType.RUNNER_REJECTED,
                    non_retryable=True,
                )
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                record = parse_record(line)
                if isinstance(record, RunEvent) and record.type == EventType.RUN_STARTED:
                    started = RunStartedData.model_validate(record.data)
                    return DispatchResult(replica_id=started.replica_id, started_at=record.ts)
                raise ApplicationError(f"runner answered {record.type!r} before run.started")
        raise ApplicationError("runner closed the dispatch stream before run.started")

    @activity.defn
    async def follow_run(self, inp: FollowInput) -> FollowOutcome:
        """Stream the run's events from the cursor into the store until it ends or asks a human.

        Heartbeats carry the cursor, so a retry (on another worker) resumes exactly there.
        """
        follower = Follower(
            db=self._db,
            http=self._http,
            url=self._url(f"/v1/runs/{inp.run_id}/events"),
            headers=self._headers(),
            inp=inp,
            read_timeout_s=max(self._settings.runner_keepalive_s * 3, 5.0),
        )
        return await follower.run()

    @activity.defn
    async def deliver_response(self, inp: DeliverInput) -> None:
        """Hand the human's answer (or expiry) to the runner; idempotent on the runner side."""
        response = await self._http.post(
            self._url(f"/v1/runs/{inp.run_id}/interactions/{inp.interaction_id}"),
            content=inp.reply.model_dump_json(),
            headers={**self._headers(), "Content-Type": "application/json"},
        )
        _require_known(response, inp.run_id)

    @activity.defn
    async def probe_run(self, inp: ProbeInput) -> None:
        """Check that the runner still holds the run; ``RunnerLost`` if it does not know it.

        A runner that does not answer fails the attempt, so Temporal retries it until the
        run's runner counts as lost.
        """
        response = await self._http.get(
            self._url(f"/v1/runs/{inp.run_id}"), headers=self._headers(), timeout=5.0
        )
        _require_known(response, inp.run_id)

    @activity.defn
    async def cancel_run(self, inp: CancelRunInput) -> None:
        """Ask the runner to stop the run; a run the runner does not know is already stopped."""
        response = await self._http.post(
            self._url(f"/v1/runs/{inp.run_id}/cancel"),
            content=CancelRequest(reason=inp.reason).model_dump_json(),
            headers={**self._headers(), "Content-Type": "application/json"},
        )
        if response.status_code == 404:
            return
        response.raise_for_status()


def _require_known(response: httpx.Response, run_id: str) -> None:
    """``RunnerLost`` (not retried) if the runner answered 404: it no longer has the run."""
    if response.status_code == 404:
        raise ApplicationError(
            f"the runner no longer knows run {run_id} (it restarted or lost it)",
            type=ErrorType.RUNNER_LOST,
            non_retryable=True,
        )
    response.raise_for_status()
