"""The ERP sink: a real DuckDB file or a real PostgreSQL database (a schema per test of the
session's throwaway cluster, ``state_postgres`` in conftest.py), a real export folder. The
sink's own tests run on both backends."""

from __future__ import annotations

import csv
import multiprocessing
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pytest
from pydantic import BaseModel

from connectors.erp import DuckDbErpSource
from connectors.erp_sink import ErpSink, SinkDocument, SinkTable
from connectors.postgres_db import close_pools
from tests.conftest import StatePostgres


class Header(BaseModel):
    procore_id: int
    project_number: str
    title: str | None
    amount: Decimal
    due_date: date | None
    deleted: bool = False


class Line(BaseModel):
    procore_id: int
    header_id: int
    amount: Decimal


HEADERS = SinkTable("things", Header)
LINES = SinkTable("thing_lines", Line, parent="header_id")


def document(procore_id: int, title: str, amounts: list[str]) -> SinkDocument:
    lines = [Line(procore_id=procore_id * 10 + n, header_id=procore_id, amount=Decimal(a)) for n, a in enumerate(amounts)]
    header = Header(procore_id=procore_id, project_number="P-1", title=title,
                    amount=sum((line.amount for line in lines), Decimal(0)), due_date=date(2026, 11, 2))
    return SinkDocument(header, lines)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class Backend:
    """Where a test's sink tables live, and a connection of the test's own beside the sink."""

    def __init__(self, name: str, location: str, export_dir: Path) -> None:
        self.name, self.location, self.export_dir = name, location, export_dir

    def open(self, **kwargs: object) -> ErpSink:
        return ErpSink(self.location, self.export_dir, **kwargs)  # type: ignore[arg-type]

    def execute(self, sql: str) -> None:
        if self.name == "duckdb":
            with duckdb.connect(self.location) as con:
                con.execute(sql)
            return
        with psycopg.connect(self.location, autocommit=True) as con:
            con.execute(sql)

    def query(self, sql: str) -> list[tuple]:
        if self.name == "duckdb":
            with duckdb.connect(self.location, read_only=True) as con:
                return con.execute(sql).fetchall()
        with psycopg.connect(self.location) as con:
            return con.execute(sql).fetchall()


def postgres_backend(state_postgres: StatePostgres, export_dir: Path) -> Backend:
    return Backend("postgresql", state_postgres.fresh_url(), export_dir)


@pytest.fixture(params=["duckdb", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "duckdb":
        yield Backend("duckdb", str(tmp_path / "erp.duckdb"), tmp_path / "export")
        return
    made = postgres_backend(request.getfixturevalue("state_postgres"), tmp_path / "export")
    yield made
    close_pools(made.location)  # the pools of the session's sinks would outnumber the server's connections


def test_rewrite_updates_in_place_and_replaces_lines(backend: Backend, tmp_path: Path) -> None:
    sink = backend.open()
    sink.write(HEADERS, LINES, [document(1, "first", ["10", "5"]), document(2, "second", ["1"])])
    sink.write(HEADERS, LINES, [document(1, "first, edited", ["7"])])

    headers = sink.rows(HEADERS)
    assert [(h["procore_id"], h["title"], h["amount"]) for h in headers] == [
        (1, "first, edited", Decimal("7.00")), (2, "second", Decimal("1.00"))]
    assert sorted((line["procore_id"], line["amount"]) for line in sink.rows(LINES)) == [
        (10, Decimal("7.00")), (20, Decimal("1.00"))]
    exported = read_csv(tmp_path / "export" / "things.csv")
    assert [row["title"] for row in exported] == ["first, edited", "second"]
    assert exported[0]["due_date"] == "2026-11-02" and exported[0]["synced_at"].endswith("Z")
    assert len(read_csv(tmp_path / "export" / "thing_lines.csv")) == 2
    assert not [p for p in (tmp_path / "export").iterdir() if p.name.startswith(".")]


def test_deleted_records_stay_marked(backend: Backend, tmp_path: Path) -> None:
    sink = backend.open()
    sink.write(HEADERS, LINES, [document(1, "a", ["1"]), document(2, "b", ["2"])])
    sink.mark_deleted(HEADERS, [2])
    assert [(h["procore_id"], h["deleted"]) for h in sink.rows(HEADERS)] == [(1, False), (2, True)]
    assert [row["deleted"] for row in read_csv(tmp_path / "export" / "things.csv")] == ["false", "true"]
    assert len(sink.rows(LINES)) == 2


def test_tables_sit_beside_the_erp_tables_and_the_source_still_reads(tmp_path: Path) -> None:
    erp = tmp_path / "erp.duckdb"
    with duckdb.connect(str(erp)) as con:
        con.execute("CREATE TABLE suppliers (supplier_code VARCHAR, name VARCHAR)")
        con.execute("INSERT INTO suppliers VALUES ('S-1', 'Acme')")
    ErpSink(erp, tmp_path / "export").write(HEADERS, LINES, [document(1, "a", ["1"])])
    assert [row.data["name"] for row in DuckDbErpSource(erp).read("suppliers")] == ["Acme"]
    assert [row.data["title"] for row in DuckDbErpSource(erp).read("things")] == ["a"]


def test_an_importer_never_sees_half_a_file(backend: Backend, tmp_path: Path) -> None:
    """Each export replaces the file whole: a reader polling it meanwhile always parses a
    complete table (every row present, the last line ending the file)."""
    sink = backend.open()
    many = [document(n, "x" * 200, ["1"]) for n in range(1, 401)]
    sink.write(HEADERS, LINES, many)
    path = tmp_path / "export" / "things.csv"
    stop, seen, torn = threading.Event(), [], []

    def poll() -> None:
        while not stop.is_set():
            text = path.read_text(encoding="utf-8")
            rows = list(csv.DictReader(text.splitlines()))
            seen.append(len(rows))
            if len(rows) != 400 or not text.endswith("\n"):
                torn.append(len(rows))

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for round_ in range(15):
            sink.write(HEADERS, LINES, [document(n, f"round {round_}", ["2"]) for n in range(1, 401)])
    finally:
        stop.set()
        reader.join()
    assert seen and not torn


class Measured(BaseModel):
    procore_id: int
    header_id: int
    quantity: Decimal | None
    amount: Decimal


MEASURED = SinkTable("thing_lines", Measured, parent="header_id")


def test_numbers_keep_every_digit_and_old_narrow_columns_are_widened(backend: Backend, tmp_path: Path) -> None:
    """A table an earlier version (or the ERP's team) made with amounts DECIMAL(18,2) and
    quantities DOUBLE is widened on first use, its rows unchanged; from then on every digit
    lands, in the table and the file."""
    backend.execute("CREATE TABLE thing_lines (procore_id BIGINT, header_id BIGINT, quantity DOUBLE PRECISION,"
                    " amount DECIMAL(18,2), synced_at TIMESTAMPTZ, PRIMARY KEY (procore_id));"
                    " INSERT INTO thing_lines VALUES (1, 1, 1.1, 5.25, now())")
    sink = backend.open()
    precise = Measured(procore_id=2, header_id=2, quantity=Decimal("1.123456789012345678"),
                       amount=Decimal("4.9995"))
    sink.write(HEADERS, MEASURED, [SinkDocument(document(2, "new", ["0"]).header, [precise])])

    rows = {row["procore_id"]: (row["quantity"], row["amount"]) for row in sink.rows(MEASURED)}
    assert rows == {1: (Decimal("1.1"), Decimal("5.25")), 2: (Decimal("1.123456789012345678"), Decimal("4.9995"))}
    exported = [(row["quantity"], row["amount"]) for row in read_csv(tmp_path / "export" / "thing_lines.csv")]
    assert exported == [("1.10", "5.25"), ("1.123456789012345678", "4.9995")]


def test_a_number_the_columns_cannot_hold_is_named_not_rounded() -> None:
    line = Measured(procore_id=7, header_id=1, quantity=Decimal("0.1234567890123456789"), amount=Decimal("1E+20"))
    assert MEASURED.misfits(line) == [
        "thing_lines 7: quantity 0.1234567890123456789 has 19 decimals, more than the 18 the ERP's DECIMAL(38,18) holds",
        "thing_lines 7: amount 1E+20 has 21 digits before the point, more than the 20 the ERP's DECIMAL(38,18) holds",
    ]
    fits = Measured(procore_id=8, header_id=1, quantity=Decimal("-99999999999999999999.000000000000000001"),
                    amount=Decimal("0"))
    assert MEASURED.misfits(fits) == []


def test_a_sink_not_written_yet_has_no_rows(backend: Backend) -> None:
    sink = backend.open()
    assert sink.rows(HEADERS) == [] and sink.existing([HEADERS, LINES]) == []
    sink.write(HEADERS, None, [document(1, "a", [])])
    assert sink.existing([HEADERS, LINES]) == ["things"]


class Varied(BaseModel):
    """Every column type, with the values a CSV writer may treat apart."""

    procore_id: int
    title: str | None
    amount: Decimal | None
    executed: bool | None
    due_date: date | None
    approved_at: datetime | None
    deleted: bool = False


VARIED = SinkTable("varied", Varied)
AWKWARD = [
    Varied(procore_id=3, title='comma, "quote"\nnewline', amount=Decimal("-1234567890123.45"), executed=True,
           due_date=date(2026, 2, 28), approved_at=datetime(2026, 3, 1, 8, 30, 0, 123456, tzinfo=UTC)),
    Varied(procore_id=1, title="", amount=Decimal("0.3"), executed=False, due_date=None,
           approved_at=datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)),
    Varied(procore_id=2, title=None, amount=None, executed=None, due_date=date(1999, 12, 31), approved_at=None),
    Varied(procore_id=2**40, title="  ünïcødé €  ", amount=Decimal("99999999999999999999.999999999999999999"),
           executed=True, due_date=date(2026, 1, 1), approved_at=datetime(2026, 1, 1, tzinfo=UTC)),
    Varied(procore_id=5, title="NULL", amount=Decimal("1.123456789012345678"), executed=False,
           due_date=date(2026, 1, 2), approved_at=None),
]


def test_both_backends_export_the_same_bytes(tmp_path: Path, state_postgres: StatePostgres) -> None:
    """An ERP importer reads the files alike whichever database the tables are in: the same rows
    written at the same instant make the same files, byte for byte, also after a mark."""
    at = datetime(2026, 5, 4, 3, 2, 1, 987654, tzinfo=UTC)
    duck = ErpSink(tmp_path / "erp.duckdb", tmp_path / "duck", clock=lambda: at)
    pg_backend = postgres_backend(state_postgres, tmp_path / "pg")
    pg = pg_backend.open(clock=lambda: at)
    for sink in (duck, pg):
        sink.write(VARIED, None, [SinkDocument(row) for row in AWKWARD])
        sink.write(HEADERS, LINES, [document(1, "a", ["10", "5.125"]), document(2, "b", [])])
    assert (tmp_path / "duck" / "varied.csv").read_bytes() == (tmp_path / "pg" / "varied.csv").read_bytes()
    for name in ("things.csv", "thing_lines.csv"):
        assert (tmp_path / "duck" / name).read_bytes() == (tmp_path / "pg" / name).read_bytes()
    for sink in (duck, pg):
        sink.mark_deleted(VARIED, [2, 3])
    exported = (tmp_path / "pg" / "varied.csv").read_bytes()
    assert exported == (tmp_path / "duck" / "varied.csv").read_bytes()
    assert b'"comma, ""quote""\nnewline"' in exported and b"99999999999999999999.999999999999999999" in exported
    assert [row["deleted"] for row in read_csv(tmp_path / "pg" / "varied.csv")] == ["false", "true", "true", "false",
                                                                                     "false"]
    assert pg.rows(VARIED) == duck.rows(VARIED)
    close_pools(pg_backend.location)


def test_postgresql_tables_have_the_erp_types_in_the_urls_schema(state_postgres: StatePostgres,
                                                                  tmp_path: Path) -> None:
    backend = postgres_backend(state_postgres, tmp_path / "export")
    backend.open().write(VARIED, None, [SinkDocument(AWKWARD[0])])
    schema = backend.query("SELECT current_schema()")[0][0]
    columns = backend.query("SELECT column_name, format_type(atttypid, atttypmod) FROM information_schema.columns"
                            " JOIN pg_attribute ON attrelid = 'varied'::regclass AND attname = column_name"
                            f" WHERE table_schema = '{schema}' AND table_name = 'varied' ORDER BY ordinal_position")
    assert columns == [("procore_id", "bigint"), ("title", "text"), ("amount", "numeric(38,18)"),
                       ("executed", "boolean"), ("due_date", "date"), ("approved_at", "timestamp with time zone"),
                       ("deleted", "boolean"), ("synced_at", "timestamp with time zone")]
    assert schema.startswith("state_")  # the fresh schema the URL's search_path names, not public
    close_pools(backend.location)


def test_a_password_never_shows_and_a_missing_schema_says_what_to_do(state_postgres: StatePostgres,
                                                                      tmp_path: Path) -> None:
    url = state_postgres.fresh_url().replace("postgres@", "postgres:s3cret-pw@")  # trust: any password
    sink = ErpSink(url, tmp_path / "export")
    assert "s3cret-pw" not in sink.describe() and "***" in sink.location
    missing = state_postgres.url("no_such_schema")
    with pytest.raises(Exception, match="CREATE SCHEMA") as raised:
        ErpSink(missing, tmp_path / "export").write(HEADERS, None, [document(1, "a", [])])
    assert "ConfigError" in {cls.__name__ for cls in type(raised.value).__mro__}
    close_pools(url)
    close_pools(missing)


ROUNDS = 10


def _write_rounds(url: str, export_dir: str, writer: int, start: multiprocessing.synchronize.Barrier) -> None:
    """One host's writes: the shared documents 1-40, each time with new line ids (Procore
    replaced the lines) and in the host's own order, and documents of its own."""
    sink = ErpSink(url, export_dir)
    sink.rows(HEADERS)  # connected: both start writing together
    start.wait(60)
    for round_ in range(ROUNDS):
        shared = [SinkDocument(document(n, f"w{writer} r{round_}", []).header,
                               [Line(procore_id=writer * 10**6 + round_ * 10**4 + n * 10 + k, header_id=n,
                                     amount=Decimal(k)) for k in range(3)]) for n in range(1, 41)]
        own = [document(writer * 1000 + round_ * 10 + n, f"own {writer}", ["1", "2"]) for n in range(10)]
        sink.write(HEADERS, LINES, (shared if writer == 1 else shared[::-1]) + own)  # the hosts' orders differ


def test_two_hosts_writing_one_table_at_once_lose_and_double_nothing(state_postgres: StatePostgres,
                                                                     tmp_path: Path) -> None:
    """Two processes (two hosts' runs) write the same tables at once, replacing the same documents'
    lines in different orders, from their first write (the tables not made yet): none fails,
    every document keeps exactly the lines of one whole write, no row of either is lost, and the
    export written last holds the table."""
    backend = postgres_backend(state_postgres, tmp_path / "export")
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    writers = [ctx.Process(target=_write_rounds, args=(backend.location, str(tmp_path / "export"), w, start))
               for w in (1, 2)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [process.exitcode for process in writers] == [0, 0]

    sink = backend.open()
    headers = {row["procore_id"]: row for row in sink.rows(HEADERS)}
    assert len(headers) == 40 + 2 * ROUNDS * 10
    lines: dict[int, list[int]] = {}
    for line in sink.rows(LINES):
        lines.setdefault(line["header_id"], []).append(line["procore_id"])
    for n in range(1, 41):
        writes = {line_id // 10**4 for line_id in lines[n]}  # writer and round of each line
        assert len(lines[n]) == 3 and len(writes) == 1, (n, lines[n])
        writer, round_ = divmod(writes.pop(), 100)
        assert headers[n]["title"] == f"w{writer} r{round_}"
    assert all(len(lines[key]) == 2 for key in headers if key > 40)
    exported = read_csv(tmp_path / "export" / "things.csv")
    assert [int(row["procore_id"]) for row in exported] == sorted(headers)
    assert len(read_csv(tmp_path / "export" / "thing_lines.csv")) == sum(len(ids) for ids in lines.values())
    close_pools(backend.location)
