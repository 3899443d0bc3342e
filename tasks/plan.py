"""Plan, then act: a pure function from (mapped records, state rows) to typed actions.

The plan decides every record's fate before any write: ``create`` (never pushed), ``update``
(pushed before, payload changed), ``skip`` (payload hash equal to the last one pushed: no call),
``blocked`` (a parent is not in Procore yet; the message names it) or ``fail`` (the record cannot
be sent; the message says why). Records Procore locks once created (``locked``) are never
updated: a change to one fails with a message instead of being pushed blindly. A record Procore
refused is not sent again while its payload is the one refused (the state keeps its hash): it
fails again without a call, with Procore's words, until it changes in the ERP or a full or targeted
resync asks for it (``resend_refused``). Dry runs publish the plan and stop; real runs execute it.
No I/O here, so the decision logic is tested without HTTP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from procore_sync.records import ActionKind, RecordState
from tasks.actions import Action, MappedRecord
from tasks.spec import partly_sent

# Appended to a refusal that is not sent again; the stored message may already end with it.
NOT_SENT_AGAIN = (
    " (not sent again: unchanged since Procore refused it; fix it in the ERP, or resync it with "
    "resync-failed or a targeted run, to send it again)"
)


def plan(
    records: Iterable[MappedRecord],
    states: Mapping[str, RecordState],
    *,
    locked: bool = False,
    resend_refused: bool = False,
) -> list[Action]:
    """``resend_refused``: send records Procore refused even when unchanged (full and targeted
    resyncs: the operator asks for them, perhaps after fixing something in Procore)."""
    return [_decide(record, states.get(record.key), locked, resend_refused) for record in records]


def _decide(record: MappedRecord, state: RecordState | None, locked: bool, resend_refused: bool) -> Action:
    common: dict[str, Any] = {
        "key": record.key,
        "warnings": tuple(record.warnings),
        "scope": record.scope,
        "source_updated_at": record.source_updated_at,
    }
    known_id = state.procore_id if state else None
    if record.blocked:
        return Action("blocked", procore_id=known_id, message=record.blocked, parent_failed=record.parent_failed, **common)
    if not record.ok:
        return Action("fail", procore_id=known_id, message=record.error, outside=record.outside, **common)
    if state and not resend_refused and _refused_unchanged(record, state):
        return _refused_again(record, state, common)
    if state and known_id and state.status in ("ok", "warning"):
        if state.payload_hash == record.payload_hash:
            return Action("skip", procore_id=known_id, payload_hash=record.payload_hash, **common)
        if record.payload_hash and state.payload_hash == partly_sent(record.payload_hash):
            # Sent before as far as Procore's update could take it: again would change nothing,
            # and the warning naming what it could not take still holds.
            return Action("skip", procore_id=known_id, payload_hash=state.payload_hash,
                          **(common | {"warnings": (state.message or "",)}))
    if locked and known_id:
        message = (
            f"{record.key} changed in the ERP, but Procore locks it since procore-sync created it "
            "(origin_id set); record the change in Procore or with a new ERP entry"
        )
        return Action("fail", procore_id=known_id, message=message, **common)
    kind: ActionKind = "update" if known_id else "create"
    return Action(
        kind,
        payload=record.payload,
        payload_hash=record.payload_hash,
        procore_id=known_id,
        **common,
    )


def _refused_unchanged(record: MappedRecord, state: RecordState) -> bool:
    """Procore refused this very payload last time: sending it again would be refused again."""
    refused = state.rejected_hash
    return state.status == "failed" and refused is not None and refused == record.payload_hash


def _refused_again(record: MappedRecord, state: RecordState, common: dict[str, Any]) -> Action:
    """A fail without a call, in Procore's words; the note is added once, not once per run."""
    refusal = (state.message or "Procore refused it").removesuffix(NOT_SENT_AGAIN)
    return Action("fail", procore_id=state.procore_id, payload_hash=record.payload_hash,
                  message=refusal + NOT_SENT_AGAIN, refused=True, **common)


def summarize(actions: Iterable[Action]) -> dict[str, int]:
    counts = Counter(action.kind for action in actions)
    return {kind: counts.get(kind, 0) for kind in ("create", "update", "skip", "fail", "blocked")}
