"""The sample ERP generator: deterministic, scaled, and bad exactly where expected.json says."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from procore_sync import sample_erp
from procore_sync.iso3166 import COUNTRY_CODES, SUBDIVISION_CODES

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def rows_of(folder: Path, table: str = "suppliers") -> list[dict[str, Any]]:
    con = duckdb.connect(str(folder / "erp.duckdb"), read_only=True)
    try:
        cursor = con.execute(f"SELECT * FROM {table} ORDER BY ALL")
        names = [c[0] for c in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
        con.close()


def expected_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "expected.json").read_text("utf-8"))["suppliers"]


def clean(text: str) -> str:
    """What the mapping promises: NFC, no zero-width or control characters, single spaces."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return " ".join(text.split())


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    sample_erp.generate(folder, scale=1, seed=42, now=NOW)
    return folder


# --- determinism and scale ----------------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data(sample: Path, tmp_path: Path) -> None:
    sample_erp.generate(tmp_path / "again", scale=1, seed=42, now=NOW)
    sample_erp.generate(tmp_path / "other", scale=1, seed=43, now=NOW)
    for name in ("expected.json", "templates/suppliers.csv"):
        assert (sample / name).read_bytes() == (tmp_path / "again" / name).read_bytes()
        assert (sample / name).read_bytes() != (tmp_path / "other" / name).read_bytes()
    assert rows_of(sample) == rows_of(tmp_path / "again")
    assert rows_of(sample) != rows_of(tmp_path / "other")


@pytest.mark.parametrize(("scale", "rows"), [(0.2, 100), (1, 500), (20, 10_000)])
def test_scale_gives_counts(tmp_path: Path, scale: float, rows: int) -> None:
    summary = sample_erp.generate(tmp_path, scale=scale, seed=1, now=NOW)
    expected = expected_of(tmp_path)
    assert summary.rows == {"suppliers": rows} and expected["rows"] == rows
    assert len(rows_of(tmp_path)) == rows
    duplicates = sum(1 for item in expected["bad"] if item["problem"] == "duplicate")
    assert expected["keys"] == rows - duplicates
    assert summary.bad == {"suppliers": len(expected["bad"])}
    bad_rows = len(expected["bad"]) + duplicates
    assert 0.03 <= bad_rows / rows <= 0.07, f"{bad_rows} bad rows of {rows}"


def test_every_category_appears_from_100_rows(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=7, now=NOW)
    expected = expected_of(tmp_path)
    assert {item["problem"] for item in expected["bad"]} == {
        "blank", "invalid_country", "invalid_state", "too_long", "duplicate"
    }
    assert {item["problem"] for item in expected["unicode"]} == set(sample_erp.UNICODE_KINDS)
    assert [item["field"] for item in expected["warnings"]] == ["notes"]


def test_a_tiny_sample_still_generates(tmp_path: Path) -> None:
    summary = sample_erp.generate(tmp_path, scale=0.01, seed=1, now=NOW)
    assert summary.rows == {"suppliers": 5}


# --- the bad rows are bad, and only they ------------------------------------------------------


def problems_of(rows: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Every problem each key really has, found independently of the generator's bookkeeping."""
    found: dict[str, set[str]] = {}
    counts = Counter(row["supplier_code"] for row in rows)
    for row in rows:
        problems = found.setdefault(row["supplier_code"], set())
        name, country, state = clean(row["name"]), row["country_code"], row["state_code"]
        if counts[row["supplier_code"]] > 1:
            problems.add("duplicate")
        if not name:
            problems.add("blank")
        if len(name) > 255:
            problems.add("too_long")
        if country not in COUNTRY_CODES:
            problems.add("invalid_country")
        elif state not in SUBDIVISION_CODES[country]:
            problems.add("invalid_state")
    return found


def test_bad_keys_are_exactly_the_bad_rows(sample: Path) -> None:
    expected = expected_of(sample)
    rows = rows_of(sample)
    found = {key: problems for key, problems in problems_of(rows).items() if problems}
    assert found == {item["key"]: {item["problem"]} for item in expected["bad"]}


def test_duplicates_share_a_key_with_different_names(sample: Path) -> None:
    duplicates = [item for item in expected_of(sample)["bad"] if item["problem"] == "duplicate"]
    assert duplicates
    for item in duplicates:
        names = [row["name"] for row in rows_of(sample) if row["supplier_code"] == item["key"]]
        assert len(names) == 2 and len(set(names)) == 2 and sorted(names) == sorted(item["names"])


def test_bad_values_are_recorded_as_they_are(sample: Path) -> None:
    by_key = {row["supplier_code"]: row for row in rows_of(sample)}
    for item in expected_of(sample)["bad"]:
        if "value" in item:
            assert by_key[item["key"]][item["field"]] == item["value"]
        if item["problem"] == "too_long":
            assert len(by_key[item["key"]]["name"]) == item["length"] > item["limit"] == 255


def test_warning_rows_have_overlong_notes_and_nothing_else_wrong(sample: Path) -> None:
    by_key = {row["supplier_code"]: row for row in rows_of(sample)}
    warnings = expected_of(sample)["warnings"]
    assert warnings
    for item in warnings:
        assert len(by_key[item["key"]]["notes"]) == item["length"] > item["limit"] == 10_000
        assert not problems_of([by_key[item["key"]]])[item["key"]]
    long_notes = {key for key, row in by_key.items() if len(row["notes"] or "") > 10_000}
    assert long_notes == {item["key"] for item in warnings}


def test_odd_unicode_names_are_valid_and_clean_to_the_expected_name(sample: Path) -> None:
    by_key = {row["supplier_code"]: row for row in rows_of(sample)}
    for item in expected_of(sample)["unicode"]:
        raw = by_key[item["key"]]["name"]
        assert raw == item["value"]
        assert clean(raw) == item["expected"]
        assert not problems_of([by_key[item["key"]]])[item["key"]]
    kinds = {item["problem"]: item["value"] for item in expected_of(sample)["unicode"]}
    assert unicodedata.normalize("NFC", kinds["combining"]) != kinds["combining"]
    assert "\u200b" in kinds["zero_width"] and "\u00a0" in kinds["nbsp"]
    assert any(unicodedata.bidirectional(ch) == "AL" or unicodedata.bidirectional(ch) == "R" for ch in kinds["rtl"])


# --- realistic values ---------------------------------------------------------------------------


def test_good_rows_look_like_suppliers(sample: Path) -> None:
    bad = {item["key"] for item in expected_of(sample)["bad"]}
    rows = [row for row in rows_of(sample) if row["supplier_code"] not in bad]
    assert all(re.fullmatch(r"S-\d{5}", row["supplier_code"]) for row in rows)
    assert {row["country_code"] for row in rows} == {"US", "CA"}
    assert all(re.fullmatch(r"[^@\s]+@[^@\s]+\.example", row["email_address"]) for row in rows)
    assert all(re.fullmatch(r"\(\d{3}\) 555-01\d\d", row["business_phone"]) for row in rows)
    for row in rows:
        postal = r"\d{5}" if row["country_code"] == "US" else r"[A-Z]\d[A-Z] \d[A-Z]\d"
        assert re.fullmatch(postal, row["zip"]), row
    assert 0.8 < sum(row["is_active"] for row in rows) / len(rows) < 1
    assert any("\n" in (row["notes"] or "") for row in rows), "some notes span lines, as in real exports"


def test_updated_at_spreads_over_90_days_before_now(sample: Path) -> None:
    stamps = [row["updated_at"] for row in rows_of(sample)]
    assert all(s.tzinfo is not None for s in stamps)
    assert NOW - timedelta(days=90) <= min(stamps) < NOW - timedelta(days=80)
    assert NOW - timedelta(days=10) < max(stamps) < NOW


def test_naive_now_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sample_erp.generate(tmp_path, now=datetime(2026, 11, 1))


def test_regenerating_replaces_the_file(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=1, now=NOW)
    sample_erp.generate(tmp_path, scale=0.4, seed=1, now=NOW)
    assert len(rows_of(tmp_path)) == 200
    assert not list(tmp_path.glob("*.building*"))


# --- mutate -----------------------------------------------------------------------------------


def test_mutate_changes_phones_and_updated_at_of_good_rows(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=3, now=NOW)
    before = {row["supplier_code"]: row for row in rows_of(tmp_path)}
    later = NOW + timedelta(hours=2)
    changed = sample_erp.mutate(tmp_path, changes=4, seed=9, now=later)
    after = {row["supplier_code"]: row for row in rows_of(tmp_path)}

    assert len(changed) == 4
    assert not set(changed) & {item["key"] for item in expected_of(tmp_path)["bad"]}
    for key in changed:
        assert after[key]["updated_at"] == later
        assert after[key]["business_phone"] != before[key]["business_phone"]
        assert after[key]["business_phone"][:5] == before[key]["business_phone"][:5]
    assert {k: v for k, v in after.items() if k not in changed} == {
        k: v for k, v in before.items() if k not in changed
    }
    csv_text = (tmp_path / "templates" / "suppliers.csv").read_text("utf-8")
    assert all(after[key]["business_phone"] in csv_text for key in changed)
