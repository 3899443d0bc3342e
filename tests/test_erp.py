"""ERP sources: DuckDB and CSV templates read the same rows, filter by cursor, name their errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.erp import CsvErpSource, DuckDbErpSource, ErpSource, SourceRow, key_values, rows_with_keys
from demo import sample_erp
from procore_sync.errors import ConfigError

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
T = datetime(2026, 10, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("erp")
    sample_erp.generate(folder, scale=0.4, seed=11, now=NOW)
    return folder


@pytest.fixture
def small_db(tmp_path: Path) -> Path:
    """Four suppliers, two saved in the same instant, one without updated_at."""
    path = tmp_path / "erp.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE suppliers (supplier_code VARCHAR, name VARCHAR, updated_at TIMESTAMPTZ)")
    con.execute(
        "INSERT INTO suppliers VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?), (?, ?, ?), (?, ?, ?)",
        [
            "S-3", "Third", T + timedelta(hours=1),
            "S-2", "Second", T,
            "S-1", "First", T,
            "S-0", "Old", T - timedelta(seconds=1),
            "S-9", "Undated", None,
        ],
    )
    con.close()
    return path


def keys(rows: list[SourceRow]) -> list[str]:
    return [row.data["supplier_code"] for row in rows]


# --- DuckDB -----------------------------------------------------------------------------------


def test_duckdb_since_is_inclusive_and_rows_are_ordered(small_db: Path) -> None:
    source = DuckDbErpSource(small_db)
    assert keys(list(source.read("suppliers"))) == ["S-9", "S-0", "S-1", "S-2", "S-3"]
    # Same instant as the cursor: read again, never lost. Undated rows: always read.
    assert keys(list(source.read("suppliers", since=T))) == ["S-9", "S-1", "S-2", "S-3"]
    assert keys(list(source.read("suppliers", since=T + timedelta(microseconds=1)))) == ["S-9", "S-3"]


def test_duckdb_since_in_another_zone_means_the_same_instant(small_db: Path) -> None:
    toronto = T.astimezone(timezone(timedelta(hours=-4)))
    assert keys(list(DuckDbErpSource(small_db).read("suppliers", since=toronto)))[1:] == ["S-1", "S-2", "S-3"]


def test_duckdb_values_are_python_and_timestamps_utc(small_db: Path) -> None:
    row = next(DuckDbErpSource(small_db).read("suppliers", since=T + timedelta(hours=1)), None)
    assert row is not None and row.data["supplier_code"] == "S-9"
    first = [r for r in DuckDbErpSource(small_db).read("suppliers") if r.data["updated_at"]][0]
    assert first.data["updated_at"] == T - timedelta(seconds=1) and first.data["updated_at"].tzinfo is UTC
    assert first.line is None


def test_zone_less_timestamps_are_read_as_utc(tmp_path: Path) -> None:
    path = tmp_path / "erp.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE suppliers AS SELECT 'S-1' AS supplier_code, TIMESTAMP '2026-10-01 08:00:00' AS updated_at")
    con.close()
    [row] = DuckDbErpSource(path).read("suppliers", since=T)
    assert row.data["updated_at"] == T and row.data["updated_at"].tzinfo is UTC


def test_entity_names_map_to_tables(small_db: Path) -> None:
    source = DuckDbErpSource(small_db, tables={"vendors": "suppliers"})
    assert len(list(source.read("vendors"))) == 5
    assert isinstance(source, ErpSource)
    assert str(small_db) in source.describe()


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "erp.duckdb"
    with pytest.raises(ConfigError, match=str(missing)):
        DuckDbErpSource(missing).read("suppliers")
    assert not missing.exists()


def test_missing_table_is_a_config_error_naming_table_and_file(small_db: Path) -> None:
    with pytest.raises(ConfigError, match="no table 'projects'") as caught:
        DuckDbErpSource(small_db, tables={"projects": "projects"}).read("projects")
    assert str(small_db) in str(caught.value) and "suppliers" in str(caught.value)


def test_a_file_that_is_not_duckdb_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "erp.duckdb"
    path.write_text("supplier_code,name\n")
    with pytest.raises(ConfigError, match="cannot open the ERP database"):
        DuckDbErpSource(path).read("suppliers")


def test_naive_since_is_refused(small_db: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        DuckDbErpSource(small_db).read("suppliers", since=datetime(2026, 10, 1))


def test_reading_releases_the_file(small_db: Path) -> None:
    rows = DuckDbErpSource(small_db).read("suppliers")
    con = duckdb.connect(str(small_db))  # read-write: fails while a read-only handle is open
    con.execute("DELETE FROM suppliers")
    con.close()
    assert len(list(rows)) == 5


# Keys as an ERP may hold them: padded with spaces, tabs, line ends, no-break or other Unicode
# spaces, blank, NULL; the engine strips them (``key_of``), so a keyed read must too.
_PADS = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\x1f", "\x85"])
_KEYS = st.one_of(st.none(), st.builds(lambda pad1, core, pad2: pad1 + core + pad2, _PADS,
                                       st.sampled_from(["", "S-1", "S-2", "s-1", "Ä-3", "S 4", "-"]), _PADS))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=st.lists(_KEYS, max_size=8), wanted=st.sets(st.sampled_from(["S-1", "S-2", "s-1", "Ä-3", "S 4", "-", "x"])))
def test_keyed_reads_find_what_reading_every_row_finds(tmp_path: Path, stored: list[str | None],
                                                      wanted: set[str]) -> None:
    """The blocked records a run reads again and the parents it looks up are found by DuckDB
    (``read_keys``, ``key_values``), exactly as picking them from every row would."""
    path = tmp_path / "erp.duckdb"  # one per test, examples replace its table
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE OR REPLACE TABLE suppliers (supplier_code VARCHAR, line INTEGER, updated_at TIMESTAMPTZ)")
        for n, key in enumerate(stored):
            con.execute("INSERT INTO suppliers VALUES (?, ?, ?)", [key, n, T])
    source = DuckDbErpSource(path)
    every = list(source.read("suppliers"))
    expected = [row.data for row in every if str(row.data.get("supplier_code", "")).strip() in wanted]
    assert [row.data for row in rows_with_keys(source, "suppliers", "supplier_code", wanted)] == expected
    assert key_values(source, "suppliers", "supplier_code") == {str(row.data["supplier_code"]).strip() for row in every}


def test_keyed_reads_of_a_key_that_is_not_text(tmp_path: Path) -> None:
    """A numeric key column prints differently in SQL and in Python: read whole, then picked."""
    path = tmp_path / "erp.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE employees (employee_id INTEGER, name VARCHAR)")
        con.execute("INSERT INTO employees VALUES (7, 'Seven'), (12, 'Twelve'), (NULL, 'Nobody')")
    source = DuckDbErpSource(path)
    assert [row.data["name"] for row in rows_with_keys(source, "employees", "employee_id", {"12", "None"})] == [
        "Nobody", "Twelve"]
    assert key_values(source, "employees", "employee_id") == {"7", "12", "None"}


# --- CSV --------------------------------------------------------------------------------------


def test_csv_templates_hold_what_duckdb_holds(sample: Path) -> None:
    from_db = list(DuckDbErpSource(sample / "erp.duckdb").read("suppliers"))
    from_csv = list(CsvErpSource(sample / "templates").read("suppliers"))
    as_text = [
        {k: v if k == "updated_at" else sample_erp.csv_value(v) for k, v in row.data.items()} for row in from_db
    ]
    assert [row.data for row in from_csv] == as_text
    assert len(from_csv) == 200


def test_csv_since_matches_duckdb(sample: Path) -> None:
    since = NOW - timedelta(days=30)
    from_db = keys(list(DuckDbErpSource(sample / "erp.duckdb").read("suppliers", since=since)))
    from_csv = keys(list(CsvErpSource(sample / "templates").read("suppliers", since=since)))
    assert from_csv == from_db and 0 < len(from_db) < 200


CSV_TEXT = (
    "\ufeffsupplier_code, name ,notes,updated_at\n"  # BOM and padded header names, as Excel writes
    "S-1,First,,2026-10-01T08:00:00Z\n"
    'S-2,Second,"two\nlines",2026-10-01 09:00:00+00:00\n'
    "\n"
    "S-3,Third,,yesterday-ish\n"
    "S-4,Fourth\n"
    "S-5,Fifth,,2026-09-01\n"
)


@pytest.fixture
def csv_folder(tmp_path: Path) -> Path:
    (tmp_path / "suppliers.csv").write_text(CSV_TEXT, encoding="utf-8")
    return tmp_path


def test_csv_lines_are_where_each_row_starts(csv_folder: Path) -> None:
    rows = {row.data["supplier_code"]: row for row in CsvErpSource(csv_folder).read("suppliers")}
    assert {key: row.line for key, row in rows.items()} == {"S-1": 2, "S-2": 3, "S-3": 6, "S-4": 7, "S-5": 8}
    assert rows["S-2"].data == {
        "supplier_code": "S-2", "name": "Second", "notes": "two\nlines",
        "updated_at": datetime(2026, 10, 1, 9, tzinfo=UTC),
    }
    assert rows["S-4"].data["notes"] == "" and rows["S-4"].data["updated_at"] == ""


def test_csv_unparsable_updated_at_is_kept_raw_and_always_read(csv_folder: Path) -> None:
    rows = list(CsvErpSource(csv_folder).read("suppliers", since=datetime(2026, 10, 1, 8, 30, tzinfo=UTC)))
    # Unparsable and blank first (they sort as oldest), then the changed row; S-1, S-5 are older.
    assert keys(rows) == ["S-3", "S-4", "S-2"]
    assert rows[0].data["updated_at"] == "yesterday-ish"


def test_csv_all_rows_ordered_by_updated_at_then_key(csv_folder: Path) -> None:
    assert keys(list(CsvErpSource(csv_folder).read("suppliers"))) == ["S-3", "S-4", "S-5", "S-1", "S-2"]


def test_csv_missing_template_is_a_config_error(tmp_path: Path) -> None:
    source = CsvErpSource(tmp_path, tables={"vendors": "suppliers"})
    with pytest.raises(ConfigError, match=str(tmp_path / "suppliers.csv")):
        source.read("vendors")
    assert isinstance(source, ErpSource) and str(tmp_path) in source.describe()


def test_csv_bytes_that_are_not_utf8_fail_their_row_only(tmp_path: Path) -> None:
    (tmp_path / "suppliers.csv").write_bytes(b"supplier_code,name\nS-1,Caf\xe9 Supply\nS-2,Fine\n")
    rows = {row.data["supplier_code"]: row for row in CsvErpSource(tmp_path).read("suppliers")}
    assert rows["S-1"].problem == "name is not UTF-8 text (b'Caf\\xe9 Supply'); save the file as UTF-8 (in Excel: CSV UTF-8)"
    assert rows["S-1"].data["name"] == "Caf\ufffd Supply", "the row keeps text the state store can hold"
    assert rows["S-2"].problem is None and rows["S-2"].data["name"] == "Fine"


def test_csv_a_quote_left_open_names_the_lines_it_swallowed(tmp_path: Path) -> None:
    (tmp_path / "suppliers.csv").write_text('supplier_code,name,notes\nS-1,"Ace,x\nS-2,Bolt,y\nS-3,Crane,z\n')
    [row] = CsvErpSource(tmp_path).read("suppliers")
    assert row.line == 2 and row.problem == ("2 cells, but the header has 3 columns (a missing or extra comma?); "
                                             "the row runs on to line 4: a quote left open?")
