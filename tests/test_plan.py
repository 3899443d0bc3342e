"""Plan decisions, from mapped records and state rows, without HTTP."""

from datetime import UTC, datetime

from connectors.state import RecordState
from tasks.mapping import MappedRecord
from tasks.plan import plan, summarize

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def record(key: str, digest: str = "h1", error: str | None = None) -> MappedRecord:
    payload = None if error else {"name": key, "origin_id": key}
    return MappedRecord(key=key, payload=payload, payload_hash=None if error else digest, error=error)


def state(key: str, *, procore_id: int | None = 7, digest: str | None = "h1", status: str = "ok") -> RecordState:
    return RecordState(
        entity="vendors", key=key, procore_id=procore_id, payload_hash=digest, status=status,  # type: ignore[arg-type]
        last_action="create", message=None, attempts=0, last_run_id="r", source_updated_at=None, updated_at=NOW,
    )


def test_new_record_is_created_without_id() -> None:
    [action] = plan([record("A")], {})
    assert action.kind == "create"
    assert action.item() == {"name": "A", "origin_id": "A"}


def test_unchanged_payload_is_skipped() -> None:
    [action] = plan([record("A")], {"A": state("A")})
    assert action.kind == "skip" and action.procore_id == 7


def test_changed_payload_is_an_update_by_id() -> None:
    [action] = plan([record("A", "h2")], {"A": state("A")})
    assert action.kind == "update"
    assert action.item() == {"name": "A", "origin_id": "A", "id": 7}


def test_failed_record_is_sent_again_even_with_the_same_payload() -> None:
    [action] = plan([record("A")], {"A": state("A", procore_id=None, digest=None, status="failed")})
    assert action.kind == "create"


def test_failed_update_is_retried_as_update() -> None:
    [action] = plan([record("A")], {"A": state("A", status="failed")})
    assert action.kind == "update"


def test_invalid_record_fails_with_its_message() -> None:
    [action] = plan([record("A", error="name is blank")], {"A": state("A")})
    assert (action.kind, action.message, action.writes) == ("fail", "name is blank", False)


def test_summarize_counts_each_kind() -> None:
    actions = plan([record("A"), record("B", "h2"), record("C", error="x")], {"B": state("B")})
    assert summarize(actions) == {"create": 1, "update": 1, "skip": 0, "fail": 1, "blocked": 0}
