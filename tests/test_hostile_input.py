"""A hostile-input corpus: bad rows fail alone, named by line and column; good rows land; no run
crashes, no upload is lost, a broken upload deactivates nothing.

Three layers. Hypothesis feeds malformed cells of every template (numbers such as ``1E+27``,
``NaN``, ``1,234.50``; dates in other formats; NUL bytes; cells over Python's 128 KiB csv field
limit; quotes left open; duplicate columns; UTF-16 and BOMs and mixed line ends) to the real CSV
reader and mapping. Fixed files under ``tests/data/hostile/`` (``make_corpus.py`` writes them)
and a local JSON API that answers wrong types, nulls, an HTML page and pages that repeat go
through the real engine: map, plan, load into the real sandbox, outcomes read back from the state
and the sandbox. And properties hold for the pure parts: ``plan()``, replace mode's deactivation
plan, the cursor's next value and the CSV reader.

Hypothesis is derandomized with bounded examples, so CI sees the same corpus every time; the
last test prints how many malformed rows the corpus fed.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import tempfile
import threading
import typing
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.erp import CsvErpSource, SourceRow
from connectors.state import RecordState, StateStore
from flows import ENTITY_FLOWS
from flows.budget import ErpBudgetLine
from flows.vendors import VENDORS
from demo import sample_erp
from procore_sync.errors import UploadRefused
from app.runner import run_entities, upload_file
from procore_sync.settings import Settings
from flows.registry import template_columns
from sandbox.config import SandboxConfig
from sandbox.server import SandboxServer, start_in_thread
from tasks.mapping import MappedRecord, map_rows
from tasks.plan import plan
from tasks.refs import Refs
from tasks.replace import plan_deactivations
from tasks.spec import DEACTIVATED_HASH, EntitySpec, SyncOptions
from tests.conftest import settings_env

DATA = Path(__file__).parent / "data" / "hostile"
MANIFEST: dict[str, dict[str, Any]] = json.loads((DATA / "manifest.json").read_text())
FAST = SandboxConfig(spike_limit=100_000, hourly_limit=100_000)
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
STAMP = "2026-10-01T08:00:00Z"
CSV_FIELD_LIMIT = 128 * 1024

# Bounded, reproducible: the same corpus on every machine, within the module's time budget.
CORPUS = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                         HealthCheck.function_scoped_fixture])
FED: Counter[str] = Counter()  # malformed rows fed, by test


# --- what is malformed, by the type of the column ---------------------------------------------

HOSTILE = {
    "number": ["1E+27", "NaN", "nan", "inf", "-Infinity", "1,234.50", "1.234,50", "1_000", "$5", "5%", "1e400",
               "0x10", "12.5.3", "--1", "١٢٣", "1 000", "one", "1.0000000000000000001"],
    "date": ["12/31/2026", "31.12.2026", "2026-02-30", "1767225600", "45000", "Dec 31 2026", "2026-1-5",
             "20261231", "2026/12/31", "tomorrow"],
    "timestamp": ["yesterday", "31/12/2026 10:00", "2026-13-01T00:00:00Z", "12:00"],
    "bool": ["maybe", "2", "-1", "yes please", "nope"],
}
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def kind_of(annotation: Any) -> str | None:
    """The malformed-value family for a model field's type (``Decimal | None`` → number)."""
    types = set(typing.get_args(annotation)) or {annotation}
    for kind, python in (("number", Decimal), ("timestamp", datetime), ("date", date), ("bool", bool)):
        if python in types:
            return kind
    return None


def outbound_specs() -> list[EntitySpec]:
    tables = template_columns()
    return [spec for spec, _ in ENTITY_FLOWS.values() if not spec.inbound and spec.erp_table in tables]


def typed_columns(spec: EntitySpec) -> dict[str, str]:
    header = template_columns()[spec.erp_table]
    kinds = {name: kind_of(field.annotation) for name, field in spec.erp_model.model_fields.items()}
    return {name: kind for name, kind in kinds.items() if kind and name in header and name != spec.key_field}


SPECS = [spec for spec in outbound_specs() if typed_columns(spec)]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("erp")
    sample_erp.generate(folder, scale=0.05, seed=5, now=NOW)
    return folder


@pytest.fixture(scope="module")
def good_rows(sample: Path) -> dict[str, list[list[str]]]:
    """Every template's rows the sample ERP means to be good."""
    expected = json.loads((sample / "expected.json").read_text())
    rows = {}
    for spec in outbound_specs():
        with (sample / "templates" / f"{spec.erp_table}.csv").open(newline="", encoding="utf-8") as handle:
            _, *body = list(csv.reader(handle))
        bad = {item["key"] for item in expected.get(spec.erp_table, {}).get("bad", [])}
        rows[spec.erp_table] = [row for row in body if row[0] not in bad]
    return rows


@pytest.fixture(scope="module")
def refs(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Refs:
    """Real lookups: an empty state store and the sample's templates as the ERP."""
    return Refs(StateStore(tmp_path_factory.mktemp("state") / "state.duckdb"), CsvErpSource(sample / "templates"))


def as_csv(header: list[str], rows: list[list[str]], eol: str = "\n") -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=eol).writerows([header, *rows])
    return out.getvalue()


def read_csv(text: str | bytes, table: str = "t") -> list[SourceRow]:
    folder = Path(tempfile.mkdtemp())
    try:
        path = folder / f"{table}.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
        return list(CsvErpSource(folder).read(table))
    finally:
        shutil.rmtree(folder)


# --- every template: malformed typed cells fail their row, by line and column -----------------


@st.composite
def malformed_tables(draw: st.DrawFn, good: dict[str, list[list[str]]]) -> tuple[EntitySpec, list[list[str]], dict[str, set[str]]]:
    spec = draw(st.sampled_from([spec for spec in SPECS if good[spec.erp_table]]))
    header = template_columns()[spec.erp_table]
    columns = typed_columns(spec)
    pool = good[spec.erp_table]
    picked = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=min(6, len(pool)), unique=True))
    rows, broken = [], {}
    for index in picked:
        row = list(pool[index])
        hit = draw(st.lists(st.sampled_from(sorted(columns)), min_size=1, max_size=2, unique=True))
        for column in hit:
            kind = columns[column]
            garbage = st.text(alphabet="0123456789.,eE+-_ $%", min_size=1, max_size=12).filter(
                lambda v: not PLAIN_NUMBER.fullmatch(v.strip()) and v.strip() != "")
            value = draw(st.sampled_from(HOSTILE[kind]) | garbage) if kind == "number" else draw(st.sampled_from(HOSTILE[kind]))
            row[header.index(column)] = value
        rows.append(row)
        broken[row[0]] = set(hit)
    return spec, rows, broken


@pytest.fixture(scope="module")
def tables(good_rows: dict[str, list[list[str]]]) -> st.SearchStrategy:
    return malformed_tables(good_rows)


def test_every_template_fails_each_malformed_cell_alone_naming_line_and_column(
    tables: st.SearchStrategy, refs: Refs
) -> None:
    @settings(CORPUS, max_examples=350)
    @given(tables)
    def check(case: tuple[EntitySpec, list[list[str]], dict[str, set[str]]]) -> None:
        spec, rows, broken = case
        header = template_columns()[spec.erp_table]
        read = read_csv(as_csv(header, rows), spec.erp_table)
        records = {record.key: record for record in map_rows(spec, read, refs)}
        FED["typed cells"] += len(rows)
        for row in read:
            key = str(row.data[spec.key_field]).strip()
            record = records[key]
            assert not record.ok and record.error, (spec.name, key, record)
            assert record.error.startswith(f"line {row.line}: "), record.error
            for column in broken[key]:
                assert column in record.error, (column, record.error)

    check()


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=Decimal("-99999999999"),
                   max_value=Decimal("99999999999")),
       st.sampled_from(["plain", "exponent", "plus", "padded", "zeros"]))
def test_a_number_within_procore_s_precision_is_read_exactly(value: Decimal, style: str) -> None:
    """Exact decimals: whatever the spelling, the ERP model holds the very number, and zero
    has no sign (``-0`` and ``0`` are one payload, one hash)."""
    text = {"plain": f"{value:f}", "exponent": f"{value:E}", "plus": f"+{value:f}" if value >= 0 else f"{value:f}",
            "padded": f"  {value:f} ", "zeros": f"{value:f}" + ("0" if "." in f"{value:f}" else ".00")}[style]
    line = ErpBudgetLine.model_validate({"budget_line_key": "K", "amount": text, "quantity": "-0"})
    assert line.amount == value and str(line.quantity) in ("0", "0E+0") and not line.quantity.is_signed()


# --- the CSV reader ----------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
CELLS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=20)


@st.composite
def csv_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    header = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True).filter(lambda h: "updated_at" not in h))
    row = st.lists(CELLS, min_size=len(header), max_size=len(header)).filter(lambda r: any(c.strip() for c in r))
    return header, draw(st.lists(row, max_size=8))


@CORPUS
@given(csv_tables(), st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le-bom"]),
       st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=1, max_size=3))
def test_the_csv_reader_gives_back_every_cell_and_line_whatever_the_encoding_and_line_ends(
    table: tuple[list[str], list[list[str]]], encoding: str, eols: list[str]
) -> None:
    header, rows = table
    records = [as_csv(r, []).removesuffix("\n") for r in [header, *rows]]
    text = "".join(record + eols[n % len(eols)] for n, record in enumerate(records))
    data = b"\xff\xfe" + text.encode("utf-16-le") if encoding == "utf-16-le-bom" else text.encode(encoding)
    read = sorted(read_csv(data), key=lambda row: row.line or 0)  # the reader orders by stamp, then key
    assert [list(row.data.values()) for row in read] == rows
    assert all(row.problem is None for row in read)
    starts = [2 + sum(r.count("\n") + 1 for r in records[1:n + 1]) for n in range(len(rows))]
    assert [row.line for row in read] == starts


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, str, str, list[list[str]], int]:
    """A good table of suppliers, then one corruption at a drawn row and column."""
    header = ["supplier_code", "name", "city", "notes", "updated_at"]
    count = draw(st.integers(3, 12))
    rows = [[f"S-{n:03d}", f"Name {n}", "Austin", "a note", STAMP] for n in range(count)]
    at, column = draw(st.integers(0, count - 1)), draw(st.integers(1, len(header) - 1))
    how = draw(st.sampled_from(["nul", "big", "open quote", "duplicate column"]))
    if how == "nul":
        rows[at][column] = rows[at][column][:2] + "\x00" + rows[at][column][2:]
        return how, header[column], as_csv(header, rows), rows, at
    if how == "big":
        rows[at][column] = "y" * draw(st.integers(CSV_FIELD_LIMIT + 1, CSV_FIELD_LIMIT + 5000))
        return how, header[column], as_csv(header, rows), rows, at
    if how == "duplicate column":
        doubled = header + [header[column]]
        body = [r + [r[column] if n != at else r[column] + " (other)"] for n, r in enumerate(rows)]
        return how, header[column], as_csv(doubled, body), rows, at
    lines = as_csv(header, rows).split("\n")
    cells = lines[at + 1].split(",")
    cells[column] = '"' + cells[column]
    lines[at + 1] = ",".join(cells)
    return how, header[column], "\n".join(lines), rows, at


@CORPUS
@given(corrupted())
def test_the_csv_reader_never_raises_and_flags_the_corrupt_row_by_column(case: tuple[str, str, str, list[list[str]], int]) -> None:
    """NUL bytes, a cell over the csv module's limit, a duplicate header column with two values,
    a quote left open: the reader returns every row; the corrupt one carries its problem (so it
    fails alone and its upload deactivates nothing), the rows before it are intact."""
    how, column, text, rows, at = case
    FED[f"corrupt csv: {how}"] += 1
    read = read_csv(text)
    by_key = {row.data["supplier_code"]: row for row in read}
    for n, row in enumerate(rows[:at]):
        assert by_key[row[0]].problem is None and by_key[row[0]].line == n + 2
    corrupt = by_key[rows[at][0]]
    assert corrupt.line == at + 2 and (corrupt.problem or how == "open quote"), (how, corrupt)
    if how == "open quote":
        # The quote may close at a later quote, or swallow the rest: either way, the swallowed
        # lines are named, and no row read is missing a problem where its cells ran on.
        swallowed = [r[0] for r in rows[at + 1:] if r[0] not in by_key]
        assert not swallowed or "quote left open" in corrupt.problem, corrupt.problem
        if not swallowed and not corrupt.problem:  # a stray quote on the last line: nothing lost
            assert [str(v).strip() for v in corrupt.data.values()][:-1] == rows[at][:-1]
    else:
        assert column in corrupt.problem, corrupt.problem
        assert [by_key[r[0]].problem for r in rows if r[0] != rows[at][0]] == [None] * (len(rows) - 1)


# --- pure parts: plan, replace mode's deactivation plan, the cursor ---------------------------

KEYS = st.sampled_from([f"K-{n}" for n in range(12)])
HASHES = st.sampled_from(["h1", "h2", "h3"])


@st.composite
def records_and_states(draw: st.DrawFn) -> tuple[list[MappedRecord], dict[str, RecordState]]:
    keys = draw(st.lists(KEYS, unique=True, max_size=10))
    records = []
    for key in keys:
        fate = draw(st.sampled_from(["ok", "error", "blocked"]))
        digest = draw(HASHES)
        records.append(MappedRecord(key=key, payload={"k": key, "h": digest} if fate == "ok" else None,
                                    payload_hash=digest if fate == "ok" else None,
                                    error="bad" if fate == "error" else None,
                                    blocked="waiting" if fate == "blocked" else None))
    states = {}
    for key in draw(st.lists(KEYS, unique=True, max_size=10)):
        status = draw(st.sampled_from(["ok", "warning", "failed", "blocked"]))
        states[key] = RecordState("e", key, draw(st.none() | st.integers(1, 99)), draw(st.none() | HASHES), status,
                                  None, "refused" if status == "failed" else None, 0, None, None, NOW,
                                  rejected_hash=draw(st.none() | HASHES) if status == "failed" else None)
    return records, states


@CORPUS
@given(records_and_states(), st.booleans(), st.booleans())
def test_plan_decides_each_record_once_and_a_second_run_after_landing_does_nothing(
    case: tuple[list[MappedRecord], dict[str, RecordState]], locked: bool, resend: bool
) -> None:
    records, states = case
    actions = plan(records, states, locked=locked, resend_refused=resend)
    assert [a.key for a in actions] == [r.key for r in records]
    for record, action in zip(records, actions):
        state = states.get(record.key)
        known = state.procore_id if state else None
        assert (action.kind == "blocked") == bool(record.blocked)
        if not record.ok:
            assert action.kind in ("fail", "blocked") and not action.writes
        if action.kind == "create":
            assert not known and action.payload_hash == record.payload_hash
        if action.kind == "update":
            assert known and action.procore_id == known and not locked
        if action.kind == "skip":
            assert known and state.payload_hash == record.payload_hash and state.status in ("ok", "warning")
        if action.writes and state and not resend and state.status == "failed":
            assert state.rejected_hash != record.payload_hash, "a refused payload is not sent again unchanged"
    # What was written landed: the same records again cost no call.
    landed = dict(states)
    for n, action in enumerate(a for a in actions if a.writes):
        landed[action.key] = RecordState("e", action.key, action.procore_id or 1000 + n, action.payload_hash, "ok",
                                         action.kind, None, 0, None, None, NOW)
    again = plan(records, landed, locked=locked, resend_refused=resend)
    assert not [a for a in again if a.writes]


@st.composite
def uploads(draw: st.DrawFn) -> tuple[set[str], list[int], dict[str, RecordState]]:
    states = {}
    for key in draw(st.lists(KEYS, unique=True, max_size=12)):
        digest = draw(st.sampled_from([None, "h1", DEACTIVATED_HASH]))
        states[key] = RecordState("vendors", key, draw(st.none() | st.integers(1, 99)), digest, "ok", None, None, 0,
                                  None, None, NOW)
    present = set(draw(st.lists(KEYS, unique=True, max_size=12)))
    return present, draw(st.lists(st.integers(2, 50), max_size=2)), states


@CORPUS
@given(uploads(), st.floats(0, 1), st.booleans())
def test_replace_mode_deactivates_only_what_an_unbroken_upload_lacks_within_the_share(
    case: tuple[set[str], list[int], dict[str, RecordState]], share: float, force: bool
) -> None:
    present, broken, states = case
    active = {k for k, s in states.items() if s.procore_id and s.payload_hash not in (None, DEACTIVATED_HASH)}
    missing = active - present
    try:
        replacement = plan_deactivations(VENDORS, present, broken, states, max_share=share, force=force)
    except UploadRefused:
        assert missing and not broken and not force and len(missing) / len(active) > share
        return
    deactivated = {a.key for a in replacement.actions}
    assert deactivated == (set() if broken else missing)
    assert not deactivated & present
    assert all(a.kind == "update" and a.payload_hash == DEACTIVATED_HASH and a.payload == {"is_active": False,
               "origin_id": a.key} for a in replacement.actions)
    assert bool(broken and missing) == bool(replacement.note)


STAMPS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC))


@CORPUS
@given(st.none() | STAMPS, st.none() | STAMPS, STAMPS, st.booleans())
def test_the_cursor_never_passes_the_run_s_start_never_goes_back_and_stays_when_told(
    before: datetime | None, newest: datetime | None, started: datetime, keep: bool
) -> None:
    from tasks.cursor import next_cursor

    after = next_cursor(before, newest, started, keep=keep)
    if keep or newest is None:
        assert after == before
        return
    assert after is not None
    assert before is None or after >= before, "never back"
    assert after <= max(started, before or started), "never past the run's start (unless it already was)"
    assert after in (before, newest, started)


# --- the real engine: one-time CSV uploads, a folder drop, an API source ----------------------


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with start_in_thread(FAST) as running:
        yield running


def landed(sandbox: SandboxServer, kind: str) -> dict[str, dict]:
    return {str(r.get("origin_id")): r for r in sandbox.store.records(kind, 1) if r.get("origin_id")}


def check_outcomes(settings_: Settings, entity: str, keys: set[str], in_procore: dict[str, dict],
                   bad: dict[str, int]) -> None:
    """GOOD rows are in Procore; each BAD-<column> row failed alone, by line and column."""
    states = StateStore(settings_.state_path).record_states(entity)
    for key in {k for k in keys if k.startswith("GOOD-")}:
        assert key in in_procore, (key, states.get(key))
    for key, line in bad.items():
        column = key.split("-")[1]
        state = states[key]
        assert state.status == "failed" and key not in in_procore, (key, state)
        assert state.message.startswith(f"line {line}: ") and column in state.message, (key, state.message)
    FED["fixed files"] += len(bad)


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_a_one_time_upload_of_each_hostile_file_lands_every_good_row(
    name: str, sample: Path, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_ = settings_env(monkeypatch, sandbox.url, sample / "erp.duckdb", tmp_path / "home")
    entity = {"suppliers": "vendors", "projects": "projects"}[MANIFEST[name]["template"]]
    file = tmp_path / name
    shutil.copy(DATA / name, file)
    summary = upload_file(settings_, entity, file)
    assert summary.status == "completed", summary.message
    kind = entity
    in_procore = landed(sandbox, kind)
    raw = (DATA / name).read_bytes()
    text = raw.decode("utf-16") if raw[:2] == b"\xff\xfe" else raw.decode("utf-8", "replace")
    keys = set(re.findall(r"(?m)^\ufeff?(GOOD-[\w-]+|GONE-\d+|DUP-1 ?|CASE-\w)", text))
    check_outcomes(settings_, entity, keys, in_procore, MANIFEST[name]["bad"])
    assert not {k for k in in_procore if not k.startswith(("GOOD-", "CASE-"))}, "only good rows land"
    if name == "suppliers-keys.csv":
        states = StateStore(settings_.state_path).record_states(entity)
        assert re.match(r"duplicate supplier_code DUP-1: the ERP has it on lines (5, 6|6, 5);", states["DUP-1"].message)
        for key in ("CASE-a", "CASE-A"):  # the natural key decides; either way, never silently lost
            assert key in in_procore or states[key].status == "failed"
    if name == "projects-numbers-dates.csv":
        exact = {k: Decimal(str(in_procore[k]["total_value"])) for k in ("GOOD-P1", "GOOD-P2", "GOOD-P3", "GOOD-P4")}
        assert exact == {"GOOD-P1": Decimal("1234.5"), "GOOD-P2": 0, "GOOD-P3": 100, "GOOD-P4": Decimal("99999999.99")}
        assert not str(in_procore["GOOD-P2"]["total_value"]).startswith("-"), "no negative zero"


@pytest.mark.usefixtures("prefect_api")
def test_a_broken_upload_in_a_folder_drop_lands_its_good_rows_deactivates_nothing_and_is_not_lost(
    sample: Path, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    settings_env(monkeypatch, sandbox.url, sample / "erp.duckdb", tmp_path / "home",
                 PROCORE_SYNC_SOURCES=json.dumps({"suppliers": {"kind": "folder", "folder": str(drop)}}))
    broken = (DATA / "suppliers-open-quote-large.csv").read_text(encoding="utf-8")
    header, rest = broken.split("\n", 1)
    good = [line for line in rest.split("\n") if line.startswith("GOOD-")]
    gone = [line for line in rest.split("\n") if line.startswith("GONE-")][:10]

    def upload(text: str) -> Any:
        (drop / "suppliers.csv").write_text(text, encoding="utf-8")
        (drop / "suppliers.csv.done").write_text("")
        return {s.entity: s for s in run_entities(Settings(), ["vendors"], SyncOptions())}["vendors"]

    first = upload("\n".join([header, *good, *gone]) + "\n")
    assert (first.status, first.created) == ("completed", len(good) + len(gone))
    second = upload(broken)
    assert second.status == "completed", second.message
    assert (second.created, second.updated, second.failed) == (0, 0, 1)
    assert "record(s) missing from the upload were not deactivated: line(s) 302 of suppliers.csv" in second.message
    vendors = landed(sandbox, "vendors")
    assert len(vendors) == len(good) + len(gone) and all(v["is_active"] for v in vendors.values())
    assert [p.name.startswith("suppliers-") for p in (drop / "archive").iterdir()] == [True, True], \
        "both uploads were accepted and archived, none lost"
    FED["fixed files"] += 1


class HostileApi(BaseHTTPRequestHandler):
    """A system of record's JSON API on loopback, answering as ``server.mode`` says."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server: Any = self.server
        page = int(parse_qs(urlparse(self.path).query).get("page", ["1"])[0])
        server.requests += 1
        if server.mode == "html":
            self._answer(200, b"<html><head><title>Down for maintenance</title></head><body>Back soon</body></html>",
                         "text/html")
        elif server.mode == "repeat":  # ignores the page asked; gives up after 30, as some servers do
            self._answer(200, json.dumps({"data": RECORDS[:3] if server.requests <= 30 else []}).encode())
        else:
            self._answer(200, json.dumps({"data": RECORDS if page == 1 else []}).encode())

    def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


RECORDS: list[Any] = [
    {"supplier_code": "GOOD-A1", "name": "Ace", "updated_at": STAMP},
    {"supplier_code": "GOOD-A2", "name": 12345, "is_active": True, "updated_at": STAMP},
    {"supplier_code": "GOOD-A3", "name": "Nulls", "city": None, "notes": None, "updated_at": STAMP},
    {"supplier_code": "BAD-name-A", "name": None, "updated_at": STAMP},
    {"supplier_code": "BAD-name-B", "name": {"first": "Ace"}, "updated_at": STAMP},
    {"supplier_code": "BAD-is_active-A", "name": "Maybe", "is_active": "perhaps", "updated_at": STAMP},
    {"supplier_code": "BAD-country_code-A", "name": "List", "country_code": ["US"], "updated_at": STAMP},
    {"supplier_code": "BAD-updated_at-A", "name": "When", "updated_at": True},
    "not an object",
    None,
    {"supplier_code": "GOOD-A4", "name": "Last", "updated_at": STAMP},
]


@pytest.mark.usefixtures("prefect_api")
def test_an_api_source_answering_html_repeated_pages_and_wrong_types_never_crashes_a_run(
    sample: Path, sandbox: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), HostileApi)
    server.mode, server.requests = "html", 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = {"kind": "api", "url": f"http://127.0.0.1:{server.server_port}", "paths": {"suppliers": "/suppliers"},
                  "record_path": "data", "page_size": 20, "max_attempts": 1}
        settings_ = settings_env(monkeypatch, sandbox.url, sample / "erp.duckdb", tmp_path / "home",
                                 PROCORE_SYNC_SOURCES=json.dumps({"suppliers": config}))

        def run() -> Any:
            return {s.entity: s for s in run_entities(Settings(), ["vendors"], SyncOptions())}["vendors"]

        html = run()
        assert html.status == "failed" and html.write_calls == 0
        assert "answered HTML, not JSON" in html.message and "Down for maintenance" in html.message
        server.mode, server.requests = "repeat", 0
        repeat = run()
        assert repeat.status == "failed" and repeat.write_calls == 0, repeat.message
        assert "page 2 repeats page 1" in repeat.message and server.requests == 2
        server.mode = "hostile"
        good = run()
        assert good.status == "completed", good.message
        in_procore = landed(sandbox, "vendors")
        assert set(in_procore) == {"GOOD-A1", "GOOD-A2", "GOOD-A3", "GOOD-A4"}
        bad = {r["supplier_code"]: n for n, r in enumerate(RECORDS, start=1)
               if isinstance(r, dict) and r["supplier_code"].startswith("BAD-")}
        check_outcomes(settings_, "vendors", set(in_procore), in_procore, bad)
        states = StateStore(settings_.state_path).record_states("vendors")
        assert states["(no supplier_code, row 9)"].message == "supplier_code is blank"
        FED["api records"] += 2
    finally:
        server.shutdown()
        server.server_close()


def test_the_corpus_fed_at_least_a_thousand_malformed_rows(capsys: pytest.CaptureFixture) -> None:
    """Runs last: counts what the tests above fed (run alone, it has nothing to count)."""
    if not FED:
        pytest.skip("run with the whole module: it counts what the other tests fed")
    with capsys.disabled():
        print(f"\nhostile corpus: {sum(FED.values())} malformed rows fed ({dict(FED)})")
    assert sum(FED.values()) >= 1000
