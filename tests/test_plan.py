"""Plan decisions, from mapped records and state rows, without HTTP."""

from datetime import UTC, datetime

from connectors.state import RecordState
from tasks.mapping import MappedRecord
from tasks.plan import NOT_SENT_AGAIN, plan, summarize

NOW = datetime(2026, 11, 23, tzinfo=UTC)


def record(key: str, digest: str = "h1", error: str | None = None) -> MappedRecord:
    payload = None if error else {"name": key, "origin_id": key}
    return MappedRecord(key=key, payload=payload, payload_hash=None if error else digest, error=error)


def state(key: str, *, procore_id: int | None = 7, digest: str | None = "h1", status: str = "ok",
          rejected: str | None = None, message: str | None = None) -> RecordState:
    return RecordState(
        entity="vendors", key=key, procore_id=procore_id, payload_hash=digest, status=status,  # type: ignore[arg-type]
        last_action="create", message=message, attempts=0, last_run_id="r", source_updated_at=None, updated_at=NOW,
        rejected_hash=rejected,
    )


REFUSAL = "Procore rejected supplier A: email is taken"


def refused(key: str = "A", **changes: object) -> RecordState:
    """Created with h1, then Procore refused the change to h2."""
    values: dict = {"status": "failed", "rejected": "h2", "message": REFUSAL} | changes
    return state(key, **values)


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


def test_a_refused_payload_unchanged_fails_again_without_a_call() -> None:
    [action] = plan([record("A", "h2")], {"A": refused()})
    assert (action.kind, action.writes, action.refused) == ("fail", False, True)
    assert (action.procore_id, action.payload_hash) == (7, "h2")
    assert action.message == REFUSAL + NOT_SENT_AGAIN
    assert "fix it in the ERP, or resync it with resync-failed or a targeted run" in NOT_SENT_AGAIN
    assert summarize([action])["fail"] == 1


def test_the_note_on_a_refusal_does_not_pile_up_run_after_run() -> None:
    [action] = plan([record("A", "h2")], {"A": refused(message=REFUSAL + NOT_SENT_AGAIN)})
    assert action.message == REFUSAL + NOT_SENT_AGAIN


def test_a_refused_create_unchanged_is_not_sent_either() -> None:
    [action] = plan([record("A", "h2")], {"A": refused(procore_id=None, digest=None)})
    assert (action.kind, action.procore_id) == ("fail", None)


def test_a_refused_record_is_sent_once_it_changes() -> None:
    [action] = plan([record("A", "h3")], {"A": refused()})
    assert (action.kind, action.payload_hash) == ("update", "h3")


def test_a_resync_sends_a_refused_record_unchanged() -> None:
    [action] = plan([record("A", "h2")], {"A": refused()}, resend_refused=True)
    assert (action.kind, action.payload_hash, action.refused) == ("update", "h2", False)


def test_a_failure_that_is_not_a_refusal_is_retried() -> None:
    # "not confirmed by Procore", a preflight or mapping failure: the state holds no refused hash.
    [action] = plan([record("A", "h2")], {"A": refused(rejected=None)})
    assert action.kind == "update"


def test_blocked_and_invalid_records_say_so_rather_than_repeat_an_older_refusal() -> None:
    [blocked, invalid] = plan(
        [MappedRecord(key="A", payload=None, blocked="waiting for project P-1"), record("B", error="name is blank")],
        {"A": refused("A"), "B": refused("B")},
    )
    assert (blocked.kind, blocked.message) == ("blocked", "waiting for project P-1")
    assert (invalid.kind, invalid.message) == ("fail", "name is blank")
