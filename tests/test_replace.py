"""Replace mode's plan (tasks/replace.py), pure: what an upload no longer has, deactivated
within the safety share, never on the word of an upload with broken lines."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.state import RecordState
from flows.cost_structure import COST_TYPES
from flows.vendors import VENDORS
from procore_sync.errors import UploadRefused
from tasks.replace import plan_deactivations
from tasks.spec import DEACTIVATED_HASH

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def states(*keys: str, digest: str = "h1") -> dict[str, RecordState]:
    return {key: RecordState(entity="vendors", key=key, procore_id=n, payload_hash=digest, status="ok",
                             last_action="create", message=None, attempts=0, last_run_id="r",
                             source_updated_at=None, updated_at=NOW)
            for n, key in enumerate(keys, start=100)}


TEN = states(*(f"S-{n}" for n in range(10)))


def test_a_record_the_upload_no_longer_has_is_deactivated_by_origin_id() -> None:
    replacement = plan_deactivations(VENDORS, set(TEN) - {"S-3"}, [], TEN, max_share=0.2, force=False)
    [action] = replacement.actions
    assert (action.kind, action.key, action.procore_id, action.payload_hash) == ("update", "S-3", 103, DEACTIVATED_HASH)
    assert action.payload == {"is_active": False, "origin_id": "S-3"}
    assert action.message == "deactivated: missing from the upload of suppliers.csv" and replacement.note is None


def test_more_than_the_safety_share_refuses_the_upload_unless_forced() -> None:
    present = {"S-0", "S-1", "S-2", "S-3", "S-4", "S-5", "S-6"}  # three of ten gone: 30%
    with pytest.raises(UploadRefused, match=r"would deactivate 3 of 10 vendors \(erp suppliers\) in Procore \(30%\), more than the 20%"):
        plan_deactivations(VENDORS, present, [], TEN, max_share=0.2, force=False)
    forced = plan_deactivations(VENDORS, present, [], TEN, max_share=0.2, force=True)
    assert [a.key for a in forced.actions] == ["S-7", "S-8", "S-9"]


def test_an_upload_with_broken_lines_deactivates_nothing_and_says_which() -> None:
    replacement = plan_deactivations(VENDORS, {"S-0"}, [4, 17], TEN, max_share=0.2, force=True)
    assert replacement.actions == []
    assert replacement.note == ("9 record(s) missing from the upload were not deactivated: line(s) 4, 17 of "
                                "suppliers.csv are broken or have no supplier_code; fix them and upload again")


def test_records_already_deactivated_are_neither_counted_nor_sent_again() -> None:
    gone = states("S-8", "S-9", digest=DEACTIVATED_HASH)
    replacement = plan_deactivations(VENDORS, set(TEN) - {"S-8", "S-9"}, [], {**TEN, **gone}, max_share=0.2, force=False)
    assert replacement.actions == []


def test_an_entity_procore_cannot_deactivate_is_only_reported() -> None:
    types = states("L", "M", "E", "O", "S")
    [action] = plan_deactivations(COST_TYPES, {"L", "M", "E", "O"}, [], types, max_share=0.2, force=False).actions
    assert (action.kind, action.key) == ("skip", "S")
    assert action.warnings == ("missing from the upload of cost_types.csv; Procore has no way to deactivate "
                               "cost types, so it stays as it is",)
