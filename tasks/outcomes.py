"""Turn what Procore answered into one outcome per record.

Writers (``tasks/writers.py``) send the requests; these helpers say what became of each record:
landed (with its Procore id), or failed with Procore's own words. A failure Procore stated about
the record itself (``rejected_outcome``) keeps the hash of the refused payload, so ordinary runs
do not send it again unchanged; any other failure of a write is outside the record (a batch
refused in one answer, unconfirmed, a 5xx after all retries), and ordinary runs read it again
(``tasks/healing.py``).
"""

from __future__ import annotations

from typing import Any

from procore_sync.records import Outcome, ProcoreId
from tasks.actions import Action
from tasks.spec import EntitySpec


def field_of(record: dict[str, Any], name: str) -> Any:
    """A field of a Procore record, where Procore may show ``x_id`` as a nested ``x: {id}``."""
    if name in record or not name.endswith("_id"):
        return record.get(name)
    nested = record.get(name.removesuffix("_id"))
    return nested.get("id") if isinstance(nested, dict) else None


def outcome_of(spec: EntitySpec, action: Action, entity: dict | None, error: str | None) -> Outcome:
    if entity is not None:
        return done_outcome(action, procore_id_of(entity["id"]))
    if error is not None:
        return rejected_outcome(spec, action, error)
    # Not a refusal: nothing says what became of it, so the next run sends it again.
    reason = "Procore returned neither the record nor an error for it"
    return failed_outcome(action, f"Procore rejected {spec.display_name.lower()} {action.key}: {reason}")


def rejected_outcome(spec: EntitySpec, action: Action, reason: str, *, alone: bool = True) -> Outcome:
    """Procore refused this record's payload: failed with its words, and the refused hash kept
    when the refused request held this record ``alone`` (otherwise which one was refused is
    unknown, and the next run sends it again)."""
    message = f"Procore rejected {spec.display_name.lower()} {action.key}: {reason}"
    return failed_outcome(action, message, refused=alone)


def procore_id_of(value: Any) -> ProcoreId:
    """Core Procore ids are integers (some answers give them as text); Resource Planning's are UUIDs."""
    return int(value) if isinstance(value, int) or str(value).isdigit() else str(value)


def done_outcome(action: Action, procore_id: int | None) -> Outcome:
    """A record that is in Procore as planned (created, updated, or unchanged and skipped)."""
    return Outcome(
        key=action.key,
        action=action.kind,
        status="warning" if action.warnings else "ok",
        procore_id=procore_id,
        payload_hash=action.payload_hash,
        message="; ".join(action.warnings) or action.message,
        source_updated_at=action.source_updated_at,
    )


def failed_outcome(action: Action, message: str, *, refused: bool = False) -> Outcome:
    """``refused``: Procore refused the payload (or did before, ``action.refused``), so the state
    remembers its hash; left out, the state forgets any earlier refusal and the record is retried.
    A write that failed unrefused failed outside the record, and so did a planned failure the plan
    says is (``action.outside``); everything else is the record's own content."""
    refused = refused or action.refused
    return Outcome(
        key=action.key,
        action="fail",
        status="failed",
        procore_id=action.procore_id,
        message=message,
        source_updated_at=action.source_updated_at,
        rejected_hash=action.payload_hash if refused else None,
        outside=not refused and (action.writes or action.outside),
    )


def blocked_outcome(action: Action) -> Outcome:
    return Outcome(
        key=action.key,
        action="blocked",
        status="blocked",
        procore_id=action.procore_id,
        message=action.message,
        source_updated_at=action.source_updated_at,
        parent_failed=action.parent_failed,
    )


def outcome_without_call(action: Action) -> Outcome:
    """Record the actions that need no call: failed mappings, blocked and unchanged records."""
    if action.kind == "fail":
        return failed_outcome(action, action.message or "invalid record")
    if action.kind == "blocked":
        return blocked_outcome(action)
    return done_outcome(action, action.procore_id)
