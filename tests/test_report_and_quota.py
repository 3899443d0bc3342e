"""Report helpers and the quota bucket arithmetic (pure parts)."""

import json

import pytest

from connectors.quota import bucket_for
from tasks.report import RunSummary, artifact_key, chunk_rows, render_summary


@pytest.mark.parametrize(("hourly", "spike"), [(3600, 25), (600, 25), (3600, 100), (50, 10), (100000, 1000)])
def test_bucket_stays_inside_both_windows(hourly: int, spike: int) -> None:
    bucket = bucket_for(hourly, spike)
    assert bucket.limit >= 1 and bucket.per_second > 0
    assert bucket.limit + 10 * bucket.per_second <= spike
    assert bucket.limit + 3600 * bucket.per_second <= hourly


def test_bucket_for_procore_defaults_uses_most_of_the_hour() -> None:
    bucket = bucket_for(3600, 25)
    assert 2800 <= bucket.per_second * 3600 + bucket.limit <= 3600


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
