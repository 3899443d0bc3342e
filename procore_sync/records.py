"""A record as the engine and the connectors both see it: the row read from the ERP, what the
state remembers of it, and what one run did to it.

These are values alone. The ERP sources (``connectors/erp.py``) produce ``SourceRow``s, the
state store (``connectors/state.py``) keeps ``RecordState``s and records ``Outcome``s, and the
engine (``tasks/``) reads and makes them without importing either: the planner, the mapping and
the writers are handed what they need, and storage stays behind its own module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_args, runtime_checkable

Status = Literal["ok", "warning", "failed", "blocked"]
ActionKind = Literal["create", "update", "skip", "fail", "blocked"]

# Core Procore ids are integers; Resource Planning's are UUID strings.
ProcoreId = int | str


def require_aware(value: datetime | None, what: str) -> datetime | None:
    """Naive datetimes are refused: guessing their zone is how cursors skip or repeat data."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


# --- the ERP side -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    data: dict[str, Any]
    line: int | None = None  # the row's number in the source (CSV line), for messages
    # What is wrong with the row as read (a CSV line with the wrong number of cells): the
    # mapping fails it with this message instead of guessing which cell is which.
    problem: str | None = None


@runtime_checkable
class ErpSource(Protocol):
    def read(self, entity: str, *, since: datetime | None = None) -> Iterator[SourceRow]: ...

    def describe(self) -> str: ...


def key_of(data: Mapping[str, Any], key_field: str) -> str:
    """A row's key as the engine compares it (a missing column reads as blank)."""
    return str(data.get(key_field, "")).strip()


def key_values(source: ErpSource, table: str, key_field: str) -> set[str]:
    """Every key of ``table``: from the key column alone where the source can (a DuckDB file)."""
    keys = getattr(source, "key_values", None)
    return keys(table, key_field) if keys else {key_of(row.data, key_field) for row in source.read(table)}


# --- the state side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordState:
    entity: str
    key: str
    procore_id: ProcoreId | None
    payload_hash: str | None
    status: Status
    last_action: str | None
    message: str | None
    attempts: int
    last_run_id: str | None
    source_updated_at: datetime | None
    updated_at: datetime
    # The payload Procore refused on the last attempt (migration 0005); None after any other outcome.
    rejected_hash: str | None = None
    # Migration 0007: a failed record whose cause is outside it (read again by ordinary runs,
    # tasks/healing.py), and a blocked one whose parent failed or waits under one that did.
    failed_outside: bool = False
    parent_failed: bool = False


@dataclass(frozen=True)
class ParentState:
    """What a child's mapping needs of a parent record (``tasks.refs``): its Procore id, or why
    it has none. A few columns: a parent entity is loaded whole, tens of thousands of rows."""

    procore_id: ProcoreId | None
    status: Status
    message: str | None
    parent_failed: bool = False


@dataclass(frozen=True)
class Outcome:
    """What happened to one record in one run.

    ``create``/``update`` store the outcome's hash (the payload just pushed) and reset
    ``attempts``. ``skip`` keeps the stored hash and Procore id where the outcome has none.
    ``fail``/``blocked`` keep the stored hash (the last payload successfully pushed) and Procore
    id, and count one more consecutive attempt. ``rejected_hash`` (``fail`` only) is the payload
    Procore refused; every outcome but ``skip`` stores its own, so anything other than a refusal
    (a landed write, a batch Procore did not confirm, a mapping failure) clears it.
    ``outside`` (``fail`` only): the cause is outside the record, so ordinary runs read it again;
    ``parent_failed`` (``blocked`` only): the parent failed or waits under one that did. ``skip``
    keeps both as stored; every other outcome stores its own.
    """

    key: str
    action: ActionKind
    status: Status
    procore_id: ProcoreId | None = None
    payload_hash: str | None = None
    message: str | None = None
    source_updated_at: datetime | None = None
    rejected_hash: str | None = None
    outside: bool = False
    parent_failed: bool = False

    def __post_init__(self) -> None:
        _check_outcome(self)


# Attempts and run counts follow from the action, so its status must agree with it.
_STATUSES_OF_ACTION: dict[str, frozenset[str]] = {
    "create": frozenset({"ok", "warning"}),
    "update": frozenset({"ok", "warning"}),
    "skip": frozenset(get_args(Status)),  # skipping a parked failure keeps it failed
    "fail": frozenset({"failed"}),
    "blocked": frozenset({"blocked"}),
}


def _check_outcome(outcome: Outcome) -> None:
    allowed = _STATUSES_OF_ACTION.get(outcome.action)
    if allowed is None:
        raise ValueError(f"unknown action {outcome.action!r} for record {outcome.key!r}")
    if outcome.status not in allowed:
        raise ValueError(
            f"action {outcome.action!r} cannot have status {outcome.status!r} "
            f"(record {outcome.key!r}); expected one of {sorted(allowed)}"
        )
    if outcome.rejected_hash is not None and outcome.action != "fail":
        raise ValueError(f"only a failed outcome has a rejected_hash (record {outcome.key!r})")
    if outcome.outside and outcome.action != "fail":
        raise ValueError(f"only a failed outcome fails outside the record (record {outcome.key!r})")
    if outcome.parent_failed and outcome.action != "blocked":
        raise ValueError(f"only a blocked outcome waits under a failed parent (record {outcome.key!r})")
    require_aware(outcome.source_updated_at, f"source_updated_at of record {outcome.key!r}")
