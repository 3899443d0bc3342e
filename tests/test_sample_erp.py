"""The sample ERP generator: deterministic, scaled, and bad exactly where expected.json says."""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from sandbox.store import PLANNING_GROUPS
import pytest

from demo import sample_erp
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


@pytest.fixture(scope="module")
def again_and_other(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample made again from its seed, and from the next seed (the determinism tests')."""
    again, other = tmp_path_factory.mktemp("again"), tmp_path_factory.mktemp("other")
    sample_erp.generate(again, scale=1, seed=42, now=NOW)
    sample_erp.generate(other, scale=1, seed=43, now=NOW)
    return again, other


# --- determinism and scale ----------------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data(sample: Path, again_and_other: tuple[Path, Path]) -> None:
    again, other = again_and_other
    for name in ("expected.json", "templates/suppliers.csv"):
        assert (sample / name).read_bytes() == (again / name).read_bytes()
        assert (sample / name).read_bytes() != (other / name).read_bytes()
    assert rows_of(sample) == rows_of(again)
    assert rows_of(sample) != rows_of(other)


@pytest.mark.parametrize(("scale", "rows"), [(0.2, 100), (1, 500), (20, 10_000)])
def test_scale_gives_counts(tmp_path: Path, scale: float, rows: int) -> None:
    summary = sample_erp.generate(tmp_path, scale=scale, seed=1, now=NOW)
    expected = expected_of(tmp_path)
    assert summary.rows["suppliers"] == rows and expected["rows"] == rows
    assert len(rows_of(tmp_path)) == rows
    duplicates = sum(1 for item in expected["bad"] if item["problem"] == "duplicate")
    assert expected["keys"] == rows - duplicates
    assert summary.bad["suppliers"] == len(expected["bad"])
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
    assert summary.rows["suppliers"] == 5 and summary.rows["projects"] == 1


# --- the bad rows are bad, and only they ------------------------------------------------------


def problems_of(rows: list[dict[str, Any]], key_field: str = "supplier_code") -> dict[str, set[str]]:
    """Every problem each key really has, found independently of the generator's bookkeeping."""
    found: dict[str, set[str]] = {}
    counts = Counter(row[key_field] for row in rows)
    for row in rows:
        problems = found.setdefault(row[key_field], set())
        name, country, state = clean(row["name"]), row["country_code"], row["state_code"]
        if counts[row[key_field]] > 1:
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


# --- the whole company ------------------------------------------------------------------------

HEADERS = {  # line table → (header table, the header key column)
    "prime_contract_lines": ("prime_contracts", "contract_number"),
    "subcontract_lines": ("subcontracts", "subcontract_number"),
    "purchase_order_lines": ("purchase_orders", "po_number"),
    "direct_cost_lines": ("direct_costs", "direct_cost_key"),
}
STATUSES = {
    "prime_contracts": {"Draft", "Out For Bid", "Out For Signature", "Approved", "Complete", "Terminated"},
    "subcontracts": {"Draft", "Out For Bid", "Out For Signature", "Approved", "Complete", "Terminated", "Void"},
    "purchase_orders": {
        "Draft", "Processing", "Submitted", "Partially Received", "Received", "Approved", "Closed"
    },
    "direct_costs": {"draft", "pending", "revise_and_resubmit", "approved"},
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


Tables = dict[str, list[dict[str, Any]]]


def load(folder: Path) -> Tables:
    return {table: rows_of(folder, table) for table in sample_erp.GENERATORS}


@pytest.fixture(scope="module")
def tables(sample: Path) -> Tables:
    """Every table of the module's sample, read once for the tests that only read them."""
    return load(sample)


def all_expected(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "expected.json").read_text("utf-8"))


def wbs(project: str, sub_job: str | None, code: str, kind: str) -> str:
    return "|".join(part for part in (project, sub_job, code, kind) if part)


def references(tables: dict[str, list[dict[str, Any]]], table: str) -> list[tuple[str, str, Any]]:
    """(parent table, problem when the parent does not exist, the parent key of a row), in the
    order the row's columns name them: the rule the sample documents for which parent blocks."""
    project = ("projects", "non_existent_project", lambda r: r["project_number"])
    if table in HEADERS:
        header_table, header_key = HEADERS[table]
        headers = {h[header_key]: h for h in tables[header_table]}
        return [
            (header_table, "non_existent_header", lambda r: r[header_key]),
            ("wbs_codes", "non_existent_cost_code",
             lambda r: wbs(headers[r[header_key]]["project_number"], r["sub_job_code"], r["cost_code"], r["cost_type"])),
        ]
    return {
        "sub_jobs": [project],
        "project_cost_codes": [project, ("standard_cost_codes", "non_existent_cost_code", lambda r: r["cost_code"])],
        "wbs_codes": [
            project,
            ("sub_jobs", "non_existent_sub_job",
             lambda r: f"{r['project_number']}|{r['sub_job_code']}" if r["sub_job_code"] else None),
            ("project_cost_codes", "non_existent_cost_code", lambda r: f"{r['project_number']}|{r['cost_code']}"),
            ("cost_types", "non_existent_cost_type", lambda r: r["cost_type"]),
        ],
        "budget_lines": [
            project,
            ("wbs_codes", "non_existent_cost_code",
             lambda r: wbs(r["project_number"], r["sub_job_code"], r["cost_code"], r["cost_type"])),
        ],
        "prime_contracts": [project, ("customers", "non_existent_customer", lambda r: r["customer_code"])],
        "subcontracts": [project, ("suppliers", "non_existent_supplier", lambda r: r["supplier_code"])],
        "purchase_orders": [project, ("suppliers", "non_existent_supplier", lambda r: r["supplier_code"])],
        "direct_costs": [project, ("suppliers", "non_existent_supplier", lambda r: r["supplier_code"])],
    }.get(table, [])


def own_problems(table: str, rows: list[dict[str, Any]], key_field: str) -> dict[int, set[str]]:
    """Per row (by index), what is wrong with the row itself, whatever its parents."""
    found: dict[int, set[str]] = {i: set() for i in range(len(rows))}
    counts = Counter(row[key_field] for row in rows)
    if table in ("suppliers", "projects"):
        for i, row in enumerate(rows):
            found[i] = problems_of([row], key_field)[row[key_field]]
    for i, row in enumerate(rows):
        if counts[row[key_field]] > 1:
            found[i].add("duplicate")
        if table == "customers" and not clean(row["name"]):
            found[i].add("blank")
        if table == "employees":
            found[i] |= {"blank"} if not clean(row["last_name"]) else set()
            found[i] |= set() if EMAIL.match(row["email_address"]) else {"invalid_email"}
        if table in STATUSES and row["status"] not in STATUSES[table]:
            found[i].add("invalid_status")
        if table == "budget_lines" and row["amount"] is None:
            found[i].add("missing")
        if table == "direct_costs" and row["direct_cost_type"] == "invoice" and not row["invoice_number"]:
            found[i].add("missing")
        if table in ("resource_people", "resource_projects"):
            found[i] |= {"unknown_group"} if set(row["groups"].split("; ")) - set(PLANNING_GROUPS) else set()
        if table == "resource_projects" and row["status"] == "active" and row["start_date"] is None:
            found[i].add("missing_start_date")
    if table == "employees":  # Procore users are unique by e-mail: the one saved later fails
        first: dict[str, tuple[Any, str]] = {}
        for row in sorted(rows, key=lambda r: (r["updated_at"], r[key_field])):
            first.setdefault(row["email_address"], (row["updated_at"], row[key_field]))
        for i, row in enumerate(rows):
            if first[row["email_address"]][1] != row[key_field]:
                found[i].add("duplicate")
    return found


def derive(tables: dict[str, list[dict[str, Any]]], key_fields: dict[str, str]) -> dict[str, Any]:
    """From the data alone: which keys are bad (problem), blocked (parent), or ambiguous."""
    status: dict[str, dict[str, str]] = {}
    derived: dict[str, Any] = {}
    for table in sample_erp.GENERATORS:  # dependency order
        rows, key_field = tables[table], key_fields[table]
        own = own_problems(table, rows, key_field)
        bad: dict[str, str] = {}
        blocked: dict[str, tuple[str, str, str]] = {}
        ambiguous: list[str] = []
        for i, row in enumerate(rows):
            key, issue = row[key_field], None
            for parent_table, missing, parent_of in references(tables, table):
                parent = parent_of(row)
                state = "good" if parent is None else status[parent_table].get(parent, "missing")
                if state != "good":
                    issue = (state, parent_table, parent, missing)
                    break
            if len(own[i]) > 1 or (own[i] and issue):
                ambiguous.append(key)
            elif own[i]:
                bad[key] = next(iter(own[i]))
            elif issue and issue[0] == "missing":
                bad[key] = issue[3]
            elif issue:
                blocked[key] = (issue[1], issue[2], f"parent_{issue[0]}")
        status[table] = {row[key_field]: "good" for row in rows}
        status[table] |= dict.fromkeys(blocked, "blocked") | dict.fromkeys(bad, "failed")
        derived[table] = {"bad": bad, "blocked": blocked, "ambiguous": ambiguous}
    return derived


def listed(expected: dict[str, Any], table: str) -> tuple[dict[str, str], dict[str, tuple[str, str, str]]]:
    bad = {item["key"]: item["problem"] for item in expected[table]["bad"]}
    blocked = {
        item["key"]: (item["parent"]["table"], item["parent"]["key"], item["problem"])
        for item in expected[table]["blocked"]
    }
    return bad, blocked


def assert_expected_matches_data(folder: Path) -> None:
    expected, tables = all_expected(folder), load(folder)
    derived = derive(tables, {table: expected[table]["key_field"] for table in expected})
    for table in sample_erp.GENERATORS:
        bad, blocked = listed(expected, table)
        assert derived[table]["ambiguous"] == [], table
        assert derived[table]["bad"] == bad, table
        assert derived[table]["blocked"] == blocked, table


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    sample_erp.generate(folder, scale=0.2, seed=7, now=NOW)
    return folder


def test_every_table_is_written_with_its_columns(sample: Path) -> None:
    con = duckdb.connect(str(sample / "erp.duckdb"), read_only=True)
    try:
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        columns = dict(con.execute(
            "SELECT table_name || '.' || column_name, data_type FROM duckdb_columns()"
        ).fetchall())
    finally:
        con.close()
    assert tables == set(sample_erp.GENERATORS)
    assert {path.stem for path in (sample / "templates").glob("*.csv")} == tables
    assert columns["projects.total_value"] == "DECIMAL(18,2)"
    assert columns["budget_lines.quantity"] == "DECIMAL(18,4)"
    assert columns["purchase_order_lines.line_number"] == "INTEGER"
    assert columns["direct_costs.received_date"] == "DATE"
    assert all(columns[f"{table}.updated_at"] == "TIMESTAMP WITH TIME ZONE" for table in tables)


@pytest.mark.parametrize("folder", ["sample", "small"])
def test_expected_lists_exactly_the_bad_and_blocked_rows(folder: str, request: pytest.FixtureRequest) -> None:
    assert_expected_matches_data(request.getfixturevalue(folder))


def test_the_whole_company_is_deterministic(sample: Path, again_and_other: tuple[Path, Path]) -> None:
    again, other = again_and_other
    for path in sorted((sample / "templates").glob("*.csv")):
        name = f"templates/{path.name}"
        assert path.read_bytes() == (again / name).read_bytes(), name
        if path.stem not in ("cost_types", "standard_cost_codes"):  # fixed lists
            assert path.read_bytes() != (other / name).read_bytes(), name


def test_counts_at_scale_1(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    keys = {table: expected[table]["keys"] for table in expected}
    rows = {table: expected[table]["rows"] for table in expected}
    assert keys["projects"] == 20 and rows["projects"] == 21  # one duplicated project number
    assert (keys["customers"], keys["employees"], keys["cost_types"]) == (50, 200, 5)
    assert keys["standard_cost_codes"] == 40
    assert rows["wbs_codes"] == 2000 and 2000 <= rows["budget_lines"] <= 2020
    assert (rows["prime_contracts"], rows["subcontracts"], rows["purchase_orders"]) == (20, 100, 100)
    assert rows["direct_costs"] == 1000 and 1700 <= rows["direct_cost_lines"] <= 2000
    for lines in ("prime_contract_lines", "subcontract_lines", "purchase_order_lines"):
        assert 8 <= rows[lines] / rows[HEADERS[lines][0]] <= 12, lines
    assert all(rows[table] == expected[table]["rows"] for table in rows)
    # one prime contract per project (even where its project is mistyped)
    contracts = {row["contract_number"].removeprefix("PC-") for row in tables["prime_contracts"]}
    assert contracts == {row["project_number"].removeprefix("P-") for row in tables["projects"]}


def test_counts_scale_linearly(tmp_path: Path) -> None:
    summary = sample_erp.generate(tmp_path, scale=0.5, seed=3, now=NOW)
    assert summary.rows["wbs_codes"] == 1000 and summary.rows["subcontracts"] == 50
    assert summary.rows["direct_costs"] == 500 and summary.rows["customers"] == 25
    assert summary.rows["projects"] in (10, 11) and summary.rows["standard_cost_codes"] == 40


def test_bad_shares_are_small_except_projects(sample: Path) -> None:
    expected = all_expected(sample)
    for table, data in expected.items():
        share = (len(data["bad"]) + len(data["blocked"])) / data["rows"]
        limit = {"projects": 0.3, "prime_contracts": 0.35, "prime_contract_lines": 0.4}.get(table, 0.08)
        assert share <= limit, (table, share)


def test_a_small_sample_has_every_kind_of_bad_row(small: Path) -> None:
    expected = all_expected(small)
    problems = {(table, item["problem"]) for table in expected for item in expected[table]["bad"]}
    assert problems >= {
        ("projects", "blank"), ("customers", "blank"), ("employees", "invalid_email"),
        ("employees", "duplicate"), ("employees", "blank"),
        ("project_cost_codes", "non_existent_cost_code"), ("wbs_codes", "non_existent_cost_type"),
        ("wbs_codes", "non_existent_cost_code"), ("budget_lines", "non_existent_cost_code"),
        ("budget_lines", "missing"), ("prime_contracts", "non_existent_project"),
        ("subcontracts", "non_existent_supplier"), ("subcontracts", "invalid_status"),
        ("purchase_orders", "non_existent_supplier"), ("purchase_orders", "invalid_status"),
        ("direct_costs", "non_existent_project"), ("direct_costs", "missing"),
        *((lines, "non_existent_cost_code") for lines in HEADERS),
    }
    parents = {(table, item["parent"]["table"]) for table in expected for item in expected[table]["blocked"]}
    assert parents >= {
        ("budget_lines", "projects"), ("budget_lines", "wbs_codes"), ("prime_contracts", "customers"),
        ("prime_contracts", "projects"), ("subcontracts", "suppliers"), ("subcontracts", "projects"),
        ("purchase_orders", "suppliers"), ("purchase_orders", "projects"), ("direct_costs", "suppliers"),
        *((lines, header) for lines, (header, _) in HEADERS.items()),
    }
    assert {table for table in expected if expected[table]["warnings"]} >= {"subcontracts", "purchase_orders"}


def test_scale_1_has_every_project_defect(sample: Path) -> None:
    problems = {item["problem"] for item in all_expected(sample)["projects"]["bad"]}
    assert problems == {"blank", "invalid_country", "invalid_state", "duplicate"}


def test_bad_entries_record_the_value_in_the_data(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    for table in tables:
        key_field = expected[table]["key_field"]
        by_key = {row[key_field]: row for row in tables[table]}
        for item in expected[table]["bad"]:
            assert item["field"] in by_key[item["key"]], (table, item)
            if "value" in item and item["problem"] != "duplicate":
                assert by_key[item["key"]][item["field"]] == item["value"], (table, item)


# --- the good rows hang together -----------------------------------------------------------------


def good(expected: dict[str, Any], table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    unclean = {item["key"] for part in ("bad", "blocked") for item in expected[table][part]}
    return [row for row in rows if row[expected[table]["key_field"]] not in unclean]


def test_good_commitments_and_costs_use_good_active_suppliers(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    suppliers = {row["supplier_code"]: row for row in good(expected, "suppliers", tables["suppliers"])}
    for table in ("subcontracts", "purchase_orders", "direct_costs"):
        for row in good(expected, table, tables[table]):
            assert suppliers[row["supplier_code"]]["is_active"], (table, row)


def test_every_good_line_is_on_a_good_wbs_code_of_its_project(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    codes = {row["wbs_key"] for row in good(expected, "wbs_codes", tables["wbs_codes"])}
    for row in good(expected, "budget_lines", tables["budget_lines"]):
        assert row["budget_line_key"] in codes
    for lines, (header_table, header_key) in HEADERS.items():
        headers = {h[header_key]: h for h in tables[header_table]}
        for row in good(expected, lines, tables[lines]):
            project = headers[row[header_key]]["project_number"]
            assert wbs(project, row["sub_job_code"], row["cost_code"], row["cost_type"]) in codes


def test_every_project_has_general_requirements_and_standard_codes(tables: Tables) -> None:
    standard = {row["cost_code"]: row["name"] for row in tables["standard_cost_codes"]}
    assert standard["01-001"] == "General Requirements"
    assert all(re.fullmatch(r"\d\d-\d\d\d", code) for code in standard)
    per_project = Counter(row["project_number"] for row in tables["project_cost_codes"] if row["cost_code"] == "01-001")
    assert set(per_project) == {row["project_number"] for row in tables["projects"]}
    assert {row["cost_type"]: row["base_type"] for row in tables["cost_types"]} == {
        "L": "other", "M": "materials", "E": "equipment", "S": "commitment", "O": "other"
    }


def test_keys_are_made_of_their_parts(tables: Tables) -> None:
    for row in tables["wbs_codes"]:
        assert row["wbs_key"] == wbs(row["project_number"], row["sub_job_code"], row["cost_code"], row["cost_type"])
    for row in tables["budget_lines"]:
        assert row["budget_line_key"] == wbs(row["project_number"], row["sub_job_code"], row["cost_code"], row["cost_type"])
    for row in tables["project_cost_codes"]:
        assert row["project_cost_code_key"] == f"{row['project_number']}|{row['cost_code']}"
    for lines, (_, header_key) in HEADERS.items():
        width = 2 if lines == "direct_cost_lines" else 3
        for row in tables[lines]:
            assert row["line_key"] == f"{row[header_key]}|{row['line_number']:0{width}d}"
    projects_with_sub_jobs = {row["project_number"] for row in tables["sub_jobs"]}
    assert 0 < len(projects_with_sub_jobs) <= 0.3 * len(tables["projects"])


def test_money_adds_up(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    projects = {row["project_number"]: row for row in good(expected, "projects", tables["projects"])}
    budgets: Counter[str] = Counter()
    for row in tables["budget_lines"]:
        budgets[row["project_number"]] += row["amount"] or 0
    for key, project in projects.items():
        assert 0.8 <= budgets[key] / project["total_value"] <= 1.0, key
        assert project["total_value"] >= 1_000_000
    primes = {row["contract_number"]: row["project_number"] for row in good(expected, "prime_contracts", tables["prime_contracts"])}
    sums: Counter[str] = Counter()
    for row in tables["prime_contract_lines"]:
        if row["contract_number"] in primes:
            sums[primes[row["contract_number"]]] += row["amount"]
    assert sums and all(sums[key] == projects[key]["total_value"] for key in sums)
    for row in tables["purchase_order_lines"]:
        assert row["amount"] == (row["quantity"] * row["unit_cost"]).quantize(Decimal("0.01"))
    for row in tables["budget_lines"]:
        if row["quantity"] is not None:
            assert row["amount"] == (row["quantity"] * row["unit_cost"]).quantize(Decimal("0.01"))


def test_text_fits_except_the_warned_descriptions(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    for table in ("subcontracts", "purchase_orders", "prime_contracts", "direct_costs"):
        warned = {item["key"]: item for item in expected[table]["warnings"]}
        key_field = expected[table]["key_field"]
        for row in tables[table]:
            long = len(row["description"]) > sample_erp.DESCRIPTION_LIMIT
            assert long == (row[key_field] in warned), (table, row[key_field])
            if long:
                assert len(row["description"]) == warned[row[key_field]]["length"] >= 2_000
            assert len(row.get("title") or "") <= 255


def test_statuses_and_dates_are_plausible(sample: Path, tables: Tables) -> None:
    expected = all_expected(sample)
    for table in ("subcontracts", "purchase_orders"):
        statuses = Counter(row["status"] for row in good(expected, table, tables[table]))
        assert statuses["Approved"] >= 0.4 * sum(statuses.values())
    for row in tables["projects"]:
        assert row["start_date"] < row["completion_date"]
    for row in tables["direct_costs"]:
        assert row["direct_cost_date"] <= row["updated_at"].date()
        assert (row["invoice_number"] is None) or row["direct_cost_type"] == "invoice"
    for table in tables:
        stamps = [row["updated_at"] for row in tables[table]]
        assert all(NOW - timedelta(days=90) <= s <= NOW for s in stamps), table


def test_csv_templates_hold_what_duckdb_holds_for_every_table(small: Path) -> None:
    from connectors.erp import CsvErpSource, DuckDbErpSource

    for table in sample_erp.GENERATORS:
        from_db = list(DuckDbErpSource(small / "erp.duckdb").read(table))
        from_csv = list(CsvErpSource(small / "templates").read(table))
        as_text = [
            {k: v if k == "updated_at" else sample_erp.csv_value(v) for k, v in row.data.items()}
            for row in from_db
        ]
        assert [row.data for row in from_csv] == as_text, table


# --- changing and fixing ------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["projects", "budget_lines", "purchase_order_lines", "project_cost_codes"])
def test_mutate_table_changes_only_good_rows(tmp_path: Path, table: str) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=3, now=NOW)
    expected = all_expected(tmp_path)[table]
    key_field = expected["key_field"]
    before = {row[key_field]: row for row in rows_of(tmp_path, table)}
    later = NOW + timedelta(hours=1)
    changed = sample_erp.mutate_table(tmp_path, table, changes=3, seed=2, now=later)
    after = {row[key_field]: row for row in rows_of(tmp_path, table)}

    assert len(changed) == 3 and changed == sorted(changed)
    assert not set(changed) & {item["key"] for part in ("bad", "blocked") for item in expected[part]}
    for key in changed:
        assert after[key]["updated_at"] == later
        content = {k: v for k, v in after[key].items() if k != "updated_at"}
        assert (content == {k: v for k, v in before[key].items() if k != "updated_at"}) == (table == "project_cost_codes")
    assert {k: v for k, v in after.items() if k not in changed} == {k: v for k, v in before.items() if k not in changed}
    assert all(key in (tmp_path / "templates" / f"{table}.csv").read_text("utf-8") for key in changed)


def test_mutate_table_of_suppliers_is_mutate(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=3, now=NOW)
    assert sample_erp.mutate_table(tmp_path, "suppliers", changes=2, seed=9, now=NOW) == sample_erp.mutate(
        tmp_path, changes=2, seed=9, now=NOW
    )
    with pytest.raises(ValueError, match="unknown table 'vendors'"):
        sample_erp.mutate_table(tmp_path, "vendors", changes=1)


def test_fixing_a_bad_supplier_releases_the_commitments_it_blocked(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=7, now=NOW)
    expected = all_expected(tmp_path)
    blocked = [item for item in expected["subcontracts"]["blocked"] if item["parent"]["table"] == "suppliers"]
    supplier = blocked[0]["parent"]["key"]
    later = NOW + timedelta(hours=3)

    fixed = sample_erp.fix(tmp_path, "suppliers", supplier, now=later)

    assert fixed.changes["updated_at"][1] == later
    assert blocked[0]["key"] in fixed.released["subcontracts"]
    assert set(fixed.released["subcontract_lines"]) == {
        item["key"] for item in expected["subcontract_lines"]["blocked"]
        if item["parent"]["key"] in fixed.released["subcontracts"]
    }
    after = all_expected(tmp_path)
    assert supplier not in {item["key"] for item in after["suppliers"]["bad"]}
    assert_expected_matches_data(tmp_path)


@pytest.mark.parametrize("problem", ["blank", "duplicate", "invalid_country"])
def test_fixing_a_bad_project_releases_everything_under_it(tmp_path: Path, problem: str) -> None:
    sample_erp.generate(tmp_path, scale=0.6, seed=5, now=NOW)  # 12 projects: room for 3 bad ones
    expected = all_expected(tmp_path)
    project = next(item["key"] for item in expected["projects"]["bad"] if item["problem"] == problem)

    fixed = sample_erp.fix(tmp_path, "projects", project, now=NOW)

    assert {"project_cost_codes", "wbs_codes", "budget_lines", "prime_contracts"} <= set(fixed.released)
    assert all(key.startswith(f"{project}|") for key in fixed.released["budget_lines"])
    assert_expected_matches_data(tmp_path)
    after = all_expected(tmp_path)["projects"]
    assert after["keys"] == expected["projects"]["keys"] + (problem == "duplicate")


def test_every_fixable_bad_row_can_be_fixed(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.2, seed=11, now=NOW)
    for table, data in all_expected(tmp_path).items():
        for item in data["bad"]:
            if "fix" in item:
                fixed = sample_erp.fix(tmp_path, table, item["key"], now=NOW + timedelta(days=1))
                assert fixed.changes["updated_at"][1] == NOW + timedelta(days=1)
    after = all_expected(tmp_path)
    assert all("fix" not in item for data in after.values() for item in data["bad"])
    blocked = {table: data["blocked"] for table, data in after.items() if data["blocked"]}
    assert set(blocked) == {"budget_lines"}  # only by WBS codes whose key is the mistake
    assert_expected_matches_data(tmp_path)


def test_a_tiny_sample_is_still_consistent(tmp_path: Path) -> None:
    sample_erp.generate(tmp_path, scale=0.01, seed=2, now=NOW)
    assert_expected_matches_data(tmp_path)


def test_a_bad_combination_cannot_be_fixed_in_place(small: Path) -> None:
    key = all_expected(small)["wbs_codes"]["bad"][0]["key"]
    with pytest.raises(ValueError, match="cannot be fixed in place"):
        sample_erp.fix(small, "wbs_codes", key, now=NOW)
    with pytest.raises(ValueError, match="not a bad row"):
        sample_erp.fix(small, "projects", "P-9999", now=NOW)
