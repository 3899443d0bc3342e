"""What a run did, record by record: the counts, the records table and the state, kept as it goes.

Every outcome is written to the state store as soon as it is known (a killed run keeps what
landed) and counted for the summary; the records that did not simply land become the rows of the
run's records table. No Prefect here: the ledger is tested with any object that records outcomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from procore_sync.records import Outcome, RecordState
from tasks.actions import Action

# Which counter an action (planned or done) adds to.
COUNTER = {"create": "created", "update": "updated", "skip": "unchanged", "fail": "failed", "blocked": "blocked"}
COUNTS = ("created", "updated", "unchanged", "failed", "blocked", "warnings")


class OutcomeStore(Protocol):
    """Where outcomes are kept (``StateStore.record_outcomes``)."""

    def record_outcomes(self, run_id: str, entity: str, outcomes: Sequence[Outcome]) -> None: ...


@dataclass
class Ledger:
    store: OutcomeStore
    run_id: str
    entity: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    rows: list[dict[str, Any]] = field(default_factory=list)  # the records table: all but plain ok
    under_failed: int = 0  # records left blocked under a failed parent: not a plain green
    erp_writes: int = 0  # records written to the ERP (Procore → ERP entities)
    min_write_calls: int = 0  # the fewest write calls the endpoints allow for the writes
    notes: list[str] = field(default_factory=list)  # what the summary says when nothing failed

    def record(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        self.store.record_outcomes(self.run_id, self.entity, outcomes)
        for outcome in outcomes:
            self.counts[COUNTER[outcome.action]] += 1
            self.counts["warnings"] += outcome.status == "warning"
        self.under_failed += sum(o.parent_failed for o in outcomes)
        self.rows.extend(_row(o.key, o.procore_id, o.action, o.status, o.message) for o in outcomes if o.status != "ok")

    def planned(self, actions: Iterable[Action]) -> None:
        """A dry run counts what it would do; nothing is recorded."""
        for action in actions:
            self.counts[COUNTER[action.kind]] += 1
            self.counts["warnings"] += bool(action.warnings)
            self.under_failed += action.parent_failed

    def still_blocked(self, states: Iterable[RecordState]) -> None:
        """Blocked records the run did not read again count as blocked, as they stand."""
        still = list(states)
        self.counts["blocked"] += len(still)
        self.under_failed += sum(s.parent_failed for s in still)
        self.rows.extend(_row(s.key, s.procore_id, "blocked", s.status, s.message) for s in still)

    def note(self, text: str | None) -> None:
        if text:
            self.notes.append(text)

    def message(self) -> str | None:
        """The notes, and a named warning when records are left blocked under a failed parent:
        the run did its work (not red), but they wait for an operator (not a plain green)."""
        n = self.under_failed
        warning = (f"warning: {n} record{'s' if n != 1 else ''} blocked under a failed parent; the records "
                   "table names each parent: fix it and they follow") if n else None
        return "; ".join([*self.notes, *([warning] if warning else [])]) or None


def _row(key: str, procore_id: Any, action: str, status: str, message: str | None) -> dict[str, Any]:
    return {"erp_key": key, "procore_id": procore_id, "action": action, "status": status, "message": message}
