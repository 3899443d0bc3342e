"""Outcomes from Procore's answers, without HTTP: only a refusal keeps the refused payload's hash."""

from flows.vendors import VENDORS
from tasks.outcomes import failed_outcome, outcome_of
from tasks.plan import Action

UPDATE = Action("update", "V-1", payload={"name": "Acme"}, payload_hash="h2", procore_id=7)


def test_a_per_item_error_is_a_refusal_that_keeps_the_hash() -> None:
    outcome = outcome_of(VENDORS, UPDATE, None, "name has already been taken")
    assert (outcome.status, outcome.rejected_hash) == ("failed", "h2")
    assert outcome.message == f"Procore rejected {VENDORS.display_name.lower()} V-1: name has already been taken"


def test_a_record_procore_said_nothing_about_is_retried() -> None:
    outcome = outcome_of(VENDORS, UPDATE, None, None)
    assert (outcome.status, outcome.rejected_hash) == ("failed", None)


def test_a_batch_procore_did_not_confirm_is_retried() -> None:
    assert failed_outcome(UPDATE, "not confirmed by Procore: 503").rejected_hash is None


def test_a_refusal_planned_again_without_a_call_keeps_the_hash() -> None:
    again = Action("fail", "V-1", payload_hash="h2", procore_id=7, message="refused", refused=True)
    assert failed_outcome(again, "refused").rejected_hash == "h2"


def test_a_landed_write_has_no_refused_hash() -> None:
    outcome = outcome_of(VENDORS, UPDATE, {"id": 7}, None)
    assert (outcome.action, outcome.payload_hash, outcome.rejected_hash) == ("update", "h2", None)
