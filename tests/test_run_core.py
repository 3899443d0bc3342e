"""The run's Prefect-free parts: the ledger of outcomes and the cursor, with no server and no store."""

from datetime import UTC, datetime, timedelta

from procore_sync.records import Outcome, RecordState
from tasks.actions import Action
from tasks.cursor import next_cursor, procore_cursor, since
from tasks.ledger import Ledger

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Kept:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, list[Outcome]]] = []

    def record_outcomes(self, run_id: str, entity: str, outcomes: list[Outcome]) -> None:
        self.recorded.append((run_id, entity, list(outcomes)))


def test_the_ledger_records_counts_and_lists_all_but_plain_successes() -> None:
    store = Kept()
    ledger = Ledger(store, "run-1", "vendors")
    ledger.record([Outcome("V-1", "create", "ok", procore_id=1),
                   Outcome("V-2", "update", "warning", procore_id=2, message="name cut to 255"),
                   Outcome("V-3", "fail", "failed", message="bad email"),
                   Outcome("V-4", "blocked", "blocked", message="waiting for P-1", parent_failed=True)])
    ledger.record([])
    assert [(run, entity, len(outcomes)) for run, entity, outcomes in store.recorded] == [("run-1", "vendors", 4)]
    assert ledger.counts == {"created": 1, "updated": 1, "unchanged": 0, "failed": 1, "blocked": 1, "warnings": 1}
    assert [row["erp_key"] for row in ledger.rows] == ["V-2", "V-3", "V-4"]
    assert ledger.under_failed == 1
    assert ledger.message() == ("warning: 1 record blocked under a failed parent; the records table names each "
                                "parent: fix it and they follow")


def test_a_dry_run_counts_the_plan_and_records_nothing() -> None:
    store = Kept()
    ledger = Ledger(store, "run-2", "vendors")
    ledger.planned([Action("create", "V-1", warnings=("cut",)), Action("skip", "V-2"),
                    Action("blocked", "V-3", parent_failed=True)])
    assert store.recorded == []
    assert (ledger.counts["created"], ledger.counts["unchanged"], ledger.counts["blocked"]) == (1, 1, 1)
    assert ledger.counts["warnings"] == 1 and ledger.under_failed == 1


def test_blocked_records_not_read_again_count_as_they_stand_and_notes_join() -> None:
    ledger = Ledger(Kept(), "run-3", "subcontracts")
    state = RecordState("subcontracts", "SC-1", None, None, "blocked", "blocked", "waiting for V-9", 2, "run-0",
                        None, T0)
    ledger.still_blocked([state])
    ledger.note("synced the new upload of subcontracts.csv")
    ledger.note(None)
    ledger.note("2 record(s) missing from the upload were not deactivated")
    assert ledger.counts["blocked"] == 1 and ledger.rows[0]["message"] == "waiting for V-9"
    assert ledger.message() == ("synced the new upload of subcontracts.csv; 2 record(s) missing from the upload "
                                "were not deactivated")


def test_the_erp_cursor_never_passes_the_start_never_goes_back_and_stays_when_kept() -> None:
    assert next_cursor(None, T0 + timedelta(hours=1), T0, keep=False) == T0
    assert next_cursor(T0, T0 - timedelta(hours=1), T0 + timedelta(hours=2), keep=False) == T0
    assert next_cursor(T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2), keep=False) == T0 + timedelta(hours=1)
    assert next_cursor(T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2), keep=True) == T0
    assert next_cursor(T0, None, T0 + timedelta(hours=2), keep=False) == T0


def test_reads_reach_back_the_look_back_unless_the_cursor_is_ignored() -> None:
    assert since(T0, 300, ignore=False) == T0 - timedelta(minutes=5)
    assert since(T0, 300, ignore=True) is None
    assert since(None, 300, ignore=False) is None


def test_the_procore_cursor_is_procores_start_else_the_newest_stamp_read() -> None:
    later = T0 + timedelta(minutes=3)
    assert procore_cursor(T0, later, T0 + timedelta(hours=5), keep=False) == later
    assert procore_cursor(T0, None, later, keep=False) == later
    assert procore_cursor(later, None, T0, keep=False) == later
    assert procore_cursor(None, None, None, keep=False) is None
    assert procore_cursor(T0, later, later, keep=True) == T0
