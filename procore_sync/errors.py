"""One error tree for the whole tool.

Every error belongs to exactly one handling class, and the handling class decides what the
engine does with it:

- ``Handling.STOP``: configuration is wrong (credentials, company, permissions), or procore-sync
  called an operation Procore does not serve (``Defect``). Nothing else in the run can succeed,
  so the run stops with a message that says what to fix.
- ``Handling.RETRY``: transient (429, 5xx, timeouts, lost connections). Retried, bounded, in the
  HTTP client only; a task-level retry may re-run a whole task after the client gave up.
- ``Handling.REPORT``: one record is bad. It is recorded as failed with the message; the rest sync.

Errors carry context (entity, ERP key, Procore id, sanitised URL, status, body excerpt) and their
text is redacted before it is built, so no secret ever reaches a log line or the state store.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import ClassVar

from procore_sync.redact import redact


class Handling(enum.Enum):
    STOP = "stop"
    RETRY = "retry"
    REPORT = "report"


class SyncError(Exception):
    """Root of every error procore-sync raises on purpose."""

    handling: ClassVar[Handling] = Handling.STOP
    hint: ClassVar[str] = ""

    def __init__(
        self,
        message: str,
        *,
        entity: str | None = None,
        key: str | None = None,
        procore_id: int | None = None,
        url: str | None = None,
        status: int | None = None,
        body: str | None = None,
    ) -> None:
        self.message = redact(message)
        self.entity = entity
        self.key = key
        self.procore_id = procore_id
        self.url = redact(url) if url else None
        self.status = status
        self.body = redact(body[:300]) if body else None
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        context = [
            f"{name}={value}"
            for name, value in (
                ("entity", self.entity),
                ("key", self.key),
                ("procore_id", self.procore_id),
                ("status", self.status),
                ("url", self.url),
            )
            if value is not None
        ]
        if context:
            parts.append(f"({', '.join(context)})")
        if self.body:
            parts.append(f"body: {self.body}")
        if self.hint:
            parts.append(f"What to do: {self.hint}")
        return " ".join(parts)


# --- configuration: stop the run ------------------------------------------------------------


class ConfigError(SyncError):
    handling = Handling.STOP
    hint = "check the procore-sync settings (.env or environment) and run again."


class ProfileError(ConfigError):
    """The profiles file, or the profile a command or a run names (procore_sync/profiles.py)."""

    hint = "check the profiles file (PROCORE_SYNC_PROFILES_FILE, default profiles.toml) and run again."


class AuthenticationFailed(ConfigError):
    hint = "check PROCORE_SYNC_CLIENT_ID / PROCORE_SYNC_CLIENT_SECRET and the Procore environment."


class PermissionDenied(ConfigError):
    hint = (
        "give the service account the tool permission in Procore (App Management) "
        "and make sure the project is in its permitted projects."
    )


class NotFound(ConfigError):
    hint = "check the company id and that the app is installed in that company."


class RunTimeLimitExceeded(SyncError):
    """A run outlasted ``run_time_limit_s`` and was stopped (``tasks.prefect_run.until_deferred``)."""

    handling = Handling.STOP
    hint = ("if runs of this entity are legitimately this long (a first load of a large company), raise "
            "PROCORE_SYNC_RUN_TIME_LIMIT_S; otherwise the run's log shows the wait that did not end.")


class UnexplainedDifferences(SyncError):
    """reconcile found money that differs between the ERP and Procore where no failed, blocked
    or unsynced record explains it: its run fails, so the failed-run alert tells someone."""

    handling = Handling.STOP
    hint = ("read the run's reconcile-records table: the records on each cost code named, and what "
            "each side holds; an amount changed in Procore goes back with a full resync of its entity.")


class UploadRefused(ConfigError):
    hint = ("check that the upload is complete and right; if those records really left the system "
            "of record, run again with force_deactivation (the upload waits until then).")


class Defect(SyncError):
    """Procore does not serve what procore-sync called (405): a mistake of ours, never a verdict
    on the record (which would then be kept as refused for good) nor on the settings. It stops the
    run: every record on that path would meet it."""

    handling = Handling.STOP
    hint = ("this is a procore-sync defect, not a problem of the record or the settings: report it "
            "to the procore-sync maintainers with this message; the records stay unsynced, not "
            "refused, and a fixed version sends them.")


# --- transient: retry, bounded, in the client -----------------------------------------------


class TransientError(SyncError):
    handling = Handling.RETRY
    hint = "this usually passes; the run retries by itself. If it persists, check Procore's status."


class RateLimited(TransientError):
    """Procore said the quota window is spent; ``reset_at`` says when it refills."""

    hint = "the run waits for the quota window to reset and resumes by itself."

    def __init__(self, message: str, *, reset_at: datetime | None = None, **context: object) -> None:
        self.reset_at = reset_at
        super().__init__(message, **context)  # type: ignore[arg-type]


class ServerError(TransientError):
    pass


class ConnectionLost(TransientError):
    """Timeout or dropped connection: the request may or may not have been applied."""


class Conflict(TransientError):
    """409: another request on the same resource is running (e.g. direct cost line sync)."""


# --- record: report and continue ------------------------------------------------------------


class RecordError(SyncError):
    handling = Handling.REPORT
    hint = "fix the record in the ERP and resync it."


class InvalidRecord(RecordError):
    """The ERP record cannot be mapped to a valid Procore payload."""


class MissingParent(InvalidRecord):
    """A parent the record names is not in the ERP. Not the record's own fault: the parent may
    be added later, so ordinary runs read the record again (``tasks/healing.py``)."""

    hint = "add the parent to the ERP (the record follows by itself) or fix the reference."


class Rejected(RecordError):
    """Procore refused the record (422, or a per-item error of a sync call)."""


class DeletedInProcore(RecordError):
    """410 (or a 404 on a request addressed to one record's own id): the record was deleted in
    Procore. That record fails; the run goes on."""

    hint = "create it again with resync-failed and recreate_deleted ticked, or remove it from the ERP."


class Blocked(RecordError):
    """The record is fine but a parent (project, vendor, cost code, contract) is not in Procore.

    It is not sent; it is recorded as blocked, naming the parent, and every later run reads it
    again, so it lands by itself once the parent does.
    """

    hint = "nothing to do for this record; fix or sync its parent and it follows."

    def __init__(self, message: str, *, parent_entity: str, parent_key: str, parent_failed: bool = False,
                 **context: object) -> None:
        # ``parent_failed``: the parent failed, or waits under one that did; only an operator
        # fixing it releases the record, so the run says so instead of a plain green.
        self.parent_entity, self.parent_key, self.parent_failed = parent_entity, parent_key, parent_failed
        super().__init__(message, **context)  # type: ignore[arg-type]


class PayloadTooLarge(TransientError):
    """413 on a batch: the caller should split the batch."""

    hint = "the batch is split and sent again."


# HTTP status → error class. Statuses not listed fall back by family (4xx record, 5xx transient).
STATUS_ERRORS: dict[int, type[SyncError]] = {
    400: Rejected,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    405: Defect,
    409: Conflict,
    410: DeletedInProcore,
    413: PayloadTooLarge,
    422: Rejected,
    429: RateLimited,
    500: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
}


def error_for_status(status: int) -> type[SyncError]:
    if status in STATUS_ERRORS:
        return STATUS_ERRORS[status]
    return ServerError if status >= 500 else Rejected
