"""The ERP sink: real DuckDB file, real export folder."""

from __future__ import annotations

import csv
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
from pydantic import BaseModel

from connectors.erp import DuckDbErpSource
from connectors.erp_sink import ErpSink, SinkDocument, SinkTable


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


def test_rewrite_updates_in_place_and_replaces_lines(tmp_path: Path) -> None:
    sink = ErpSink(tmp_path / "erp.duckdb", tmp_path / "export")
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


def test_deleted_records_stay_marked(tmp_path: Path) -> None:
    sink = ErpSink(tmp_path / "erp.duckdb", tmp_path / "export")
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


def test_an_importer_never_sees_half_a_file(tmp_path: Path) -> None:
    """Each export replaces the file whole: a reader polling it meanwhile always parses a
    complete table (every row present, the last line ending the file)."""
    sink = ErpSink(tmp_path / "erp.duckdb", tmp_path / "export")
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


def test_numbers_keep_every_digit_and_old_narrow_columns_are_widened(tmp_path: Path) -> None:
    """A table an earlier version made (amounts DECIMAL(18,2), quantities DOUBLE) is widened on
    first use, its rows unchanged; from then on every digit lands, in the table and the file."""
    erp = tmp_path / "erp.duckdb"
    with duckdb.connect(str(erp)) as con:
        con.execute("CREATE TABLE thing_lines (procore_id BIGINT, header_id BIGINT, quantity DOUBLE,"
                    " amount DECIMAL(18,2), synced_at TIMESTAMPTZ, PRIMARY KEY (procore_id))")
        con.execute("INSERT INTO thing_lines VALUES (1, 1, 1.1, 5.25, now())")
    sink = ErpSink(erp, tmp_path / "export")
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
