"""Report helpers and the quota bucket arithmetic (pure parts)."""

import json

import pytest

from connectors.quota import budget_for
from tasks.report import RunSummary, artifact_key, chunk_rows, render_summary


@pytest.mark.parametrize(("hourly", "spike", "hour_s"), [(3600, 25, 3600), (600, 25, 3600), (3600, 100, 3600),
                                                       (50, 10, 3600), (100000, 1000, 3600), (180, 25, 120)])
def test_budget_spends_each_window_and_no_more(hourly: int, spike: int, hour_s: float) -> None:
    budget = budget_for(hourly, spike, hour_s)
    # One call in hand, and each held a little over the window: Procore counts it when it arrives.
    assert budget.spike_slots == spike - 1 and 10 < budget.spike_hold_s <= 10.1
    assert budget.hour_limit == hourly  # the whole hour at once, while it has room
    assert budget.hour_per_second * hour_s == pytest.approx(hourly)  # and an hour's calls an hour


def test_chunks_stay_under_the_size_cap_and_keep_every_row() -> None:
    rows = [{"erp_key": f"S-{i}", "message": "m" * 100} for i in range(1000)]
    chunks = chunk_rows(rows, max_bytes=20_000)
    assert len(chunks) > 1
    assert sum(len(c) for c in chunks) == 1000
    assert all(len(json.dumps(c)) <= 20_000 + 2 * len(c) for c in chunks)


def test_artifact_keys_are_lowercase_dashes() -> None:
    assert artifact_key("Cost_Codes", "records") == "cost-codes-records"


def test_summary_names_counts_calls_and_next_step() -> None:
    text = render_summary(RunSummary(entity="vendors", run_id="r1", status="completed", created=3, failed=2,
                                     api_calls=5, write_calls=1, quota_remaining=3590))
    assert "| 3 | 0 | 0 | 2 | 0 | 0 |" in text
    assert "5 (1 writes" in text and "3590" in text
    assert "vendors-records" in text
