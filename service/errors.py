"""Every error the service raises on purpose, in one tree. The API maps each branch to one HTTP
status (`status_code`) and answers `{"detail": exc.detail}`; the CLI prints the message.

    ServiceError
    ├── NotFound                404  SweepNotFound, RunNotFound, ScheduleNotFound
    ├── InvalidRequest          422  SpecError, BadFilter: `detail` lists {loc, msg, type} per problem
    ├── Conflict                409  SweepAlreadyFinished, a schedule name taken
    ├── NotAuthenticated        401  no token, or one unknown, revoked or expired
    ├── Forbidden               403  a token without the scope a request needs
    ├── TooManyRequests         429  a token over its submit rate or its queued sweeps
    ├── SetupError                   this process cannot start: SettingsError, SchemaError,
    │                                AlreadyRunning
    ├── ReportError                  a trainer's report that does not fit the service (its run ends
    │                                `failed` with the message; nothing becomes NULL)
    └── ClusterUnavailable           Ray cannot be reached, or went away under the trials: the
                                     worker gives the sweep back to the queue, it never fails it

Third-party errors are translated where they enter (`raise ClusterUnavailable(...) from exc`).
The trainers' own `ConfigError` (trainers/errors.py) reaches users as a SpecError. A branch may
add response headers (`headers`): 401 says how to authenticate, 429 when to try again.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence


class ServiceError(Exception):
    """The base of every error above. `detail` is what the API answers."""

    status_code = 500
    headers: dict[str, str] | None = None

    @property
    def detail(self) -> Any:
        return str(self)


class NotFound(ServiceError):
    status_code = 404


class InvalidRequest(ServiceError):
    """A request the service refuses, with one entry per problem: `loc` is the path of the field
    inside the request's `source` (body, query or path), `msg` says what is allowed."""

    status_code = 422

    def __init__(self, errors: Sequence[dict[str, Any]], source: Literal["body", "query", "path"]) -> None:
        self.errors = [dict(e) for e in errors]
        self.source = source
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in self.errors))

    @property
    def detail(self) -> list[dict[str, Any]]:
        return [{**e, "loc": [self.source, *e["loc"]]} for e in self.errors]


class Conflict(ServiceError):
    status_code = 409


class NotAuthenticated(ServiceError):
    status_code = 401
    headers = {"WWW-Authenticate": 'Bearer realm="clipsweep"'}


class Forbidden(ServiceError):
    status_code = 403


class TooManyRequests(ServiceError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class SetupError(ServiceError):
    """The process cannot start as configured; the message says what to change."""


class ReportError(ServiceError):
    """A trainer's report that does not fit service.lifecycle.report.RunReport."""


class ClusterUnavailable(ServiceError):
    """Ray cannot be reached, or the infrastructure under the trials went away (not the sweep's fault)."""


class SweepNotFound(NotFound):
    def __init__(self, sweep_id: int) -> None:
        super().__init__(f"no sweep with id {sweep_id}")
        self.sweep_id = sweep_id


class ScheduleNotFound(NotFound):
    def __init__(self, schedule_id: int) -> None:
        super().__init__(f"no schedule with id {schedule_id}")


class AlertNotFound(NotFound):
    def __init__(self, alert_id: int) -> None:
        super().__init__(f"no alert with id {alert_id}")


class WebhookNotFound(NotFound):
    def __init__(self, schedule_id: int, webhook_id: int) -> None:
        super().__init__(f"schedule {schedule_id} has no webhook with id {webhook_id}")


class RunNotFound(NotFound):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"no run with id {run_id}")
        self.run_id = run_id


class SpecError(InvalidRequest):
    """A sweep spec that cannot run; each entry's `loc` is the field's path inside the spec."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(errors, source="body")


class BadFilter(InvalidRequest):
    """A filter (a query or path parameter) naming something the sweep does not have; the message
    lists what it has."""

    def __init__(self, name: str, message: str, source: Literal["query", "path"] = "query") -> None:
        super().__init__([{"loc": [name], "msg": message, "type": "value_error"}], source=source)


class SweepAlreadyFinished(Conflict):
    def __init__(self, sweep_id: int, status: str) -> None:
        super().__init__(f"sweep {sweep_id} already ended {status}; only a queued or running sweep can be cancelled")
        self.status = status


class SettingsError(SetupError):
    """A CLIPSWEEP_ variable with a bad value; the message names each variable and what it needs."""


class SchemaError(SetupError):
    """The database's schema revision does not match this version of clipsweep."""


class AlreadyRunning(SetupError):
    """SQLite serves one worker and one scheduler, and another holds the lock of this one's kind."""
