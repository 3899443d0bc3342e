"""A seeded sample ERP: a realistic construction company's data with a known share of bad rows.

``generate`` writes three things into one folder:

- ``erp.duckdb``: one table per ERP entity (only ``suppliers`` for now), what
  ``connectors.erp.DuckDbErpSource`` reads;
- ``templates/<table>.csv``: the same rows as CSV templates, what ``CsvErpSource`` reads;
- ``expected.json``: per table, the keys that must fail (with field and problem), the keys that
  must sync with a warning, and the keys with odd but valid Unicode, so tests can check that
  exactly those records fail and everything else lands.

Each entity is one generator function in ``GENERATORS`` with its own random stream (derived from
the seed and the table name), so adding an entity never changes the rows of another. Rows are
built good first; then disjoint, randomly chosen rows get exactly one defect each. The same seed
and ``now`` give the same rows, CSV files and expected.json; ``updated_at`` values spread over the
90 days before ``now``. Names come from word lists, e-mail and web addresses use the reserved
``.example`` domain, and phone numbers the fictional 555-01xx range.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

DUCKDB_FILE = "erp.duckdb"
TEMPLATES_DIR = "templates"
EXPECTED_FILE = "expected.json"
HISTORY_DAYS = 90
NOTES_LIMIT = 10_000  # Procore's limit for vendor notes: longer notes are cut with a warning.
NAME_LIMIT = 255  # Procore's limit for vendor names: longer names fail.


# --- what a generator returns -----------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str


@dataclass
class TableData:
    """The rows of one ERP table and what a sync of them must report."""

    table: str
    key_field: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    bad: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    unicode: list[dict[str, Any]] = field(default_factory=list)

    def expected(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key_field": self.key_field,
            "rows": len(self.rows),
            "keys": len({row[self.key_field] for row in self.rows}),
            "bad": sorted(self.bad, key=lambda item: item["key"]),
            "warnings": sorted(self.warnings, key=lambda item: item["key"]),
            "unicode": sorted(self.unicode, key=lambda item: item["key"]),
        }


@dataclass(frozen=True)
class SampleSummary:
    out_dir: Path
    seed: int
    scale: float
    now: datetime
    rows: dict[str, int]
    bad: dict[str, int]
    warnings: dict[str, int]
    unicode: dict[str, int]

    def __str__(self) -> str:
        parts = [
            f"{self.rows[t]} {t} ({self.bad[t]} bad, {self.warnings[t]} with warnings, "
            f"{self.unicode[t]} with odd Unicode)"
            for t in self.rows
        ]
        return ", ".join(parts)


Generator = Callable[[random.Random, float, datetime], TableData]


# --- word lists -------------------------------------------------------------------------------

PLACES = (
    "Summit Northgate Ridgeline Keystone Pioneer Cascade Frontier Evergreen Timberline Westfield "
    "Cornerstone Bedrock Apex Liberty Heritage Lakeshore Prairie Harbor Capital Metro Granite "
    "Ironwood Redstone Bluewater Silverline Stonebridge Highland Riverside Eastgate Maple"
).split()
SURNAMES = (
    "Henderson O'Brien Nguyen Ortiz Walsh Kowalski Patel MacLeod Tremblay Gagnon Schmidt "
    "Johansson Rossi Kim Okafor Fraser Murphy Delgado Chen Novak Bouchard Singh Larsen Petrov"
).split()
# trade → words that trade's suppliers put in their names
TRADES: dict[str, tuple[str, ...]] = {
    "Concrete": ("Concrete", "Ready-Mix", "Concrete Pumping"),
    "Electrical": ("Electrical", "Electric"),
    "Plumbing": ("Plumbing", "Plumbing & Heating"),
    "HVAC": ("Mechanical", "Heating & Cooling", "HVAC"),
    "Structural Steel": ("Steel", "Steel Erectors", "Ironworks"),
    "Roofing": ("Roofing", "Roofing & Sheet Metal"),
    "Drywall": ("Drywall", "Interiors"),
    "Masonry": ("Masonry", "Stone"),
    "Excavation": ("Excavating", "Earthworks"),
    "Paving": ("Paving", "Asphalt"),
    "Glazing": ("Glass & Glazing", "Glass"),
    "Fire Protection": ("Fire Protection", "Sprinkler"),
    "Painting": ("Painting", "Coatings"),
    "Flooring": ("Flooring", "Tile & Stone"),
    "Lumber": ("Lumber", "Building Supply"),
    "Equipment Rental": ("Equipment Rental", "Rentals"),
    "Landscaping": ("Landscaping",),
    "Insulation": ("Insulation",),
    "Surveying": ("Surveying", "Geomatics"),
}
SUFFIXES = {
    "US": ("Inc.", "LLC", "Co.", "Supply", "Contractors", "Services", "Group", "Corp."),
    "CA": ("Ltd", "Ltd.", "Inc.", "Limited", "Supply", "Contracting"),
}
# (city, state or province, area code, start of the ZIP / first letter of the postal code)
CITIES = {
    "US": (
        ("Denver", "CO", "303", "802"), ("Phoenix", "AZ", "602", "850"),
        ("Austin", "TX", "512", "787"), ("Seattle", "WA", "206", "981"),
        ("Atlanta", "GA", "404", "303"), ("Chicago", "IL", "312", "606"),
        ("Boston", "MA", "617", "021"), ("Nashville", "TN", "615", "372"),
        ("Charlotte", "NC", "704", "282"), ("Salt Lake City", "UT", "801", "841"),
        ("Portland", "OR", "503", "972"), ("Tampa", "FL", "813", "336"),
        ("Columbus", "OH", "614", "432"), ("Minneapolis", "MN", "612", "554"),
        ("Sacramento", "CA", "916", "958"), ("Las Vegas", "NV", "702", "891"),
        ("Kansas City", "MO", "816", "641"), ("Pittsburgh", "PA", "412", "152"),
    ),
    "CA": (
        ("Toronto", "ON", "416", "M"), ("Mississauga", "ON", "905", "L"),
        ("Ottawa", "ON", "613", "K"), ("Vancouver", "BC", "604", "V"),
        ("Calgary", "AB", "403", "T"), ("Edmonton", "AB", "780", "T"),
        ("Winnipeg", "MB", "204", "R"), ("Montréal", "QC", "514", "H"),
        ("Québec", "QC", "418", "G"), ("Halifax", "NS", "902", "B"),
        ("Saskatoon", "SK", "306", "S"), ("St. John's", "NL", "709", "A"),
    ),
}
STREETS = "Quarry Industrial Commerce Main Railway Foundry Mill Depot Airport Kiln".split()
STREET_TYPES = ("Road", "Street", "Avenue", "Parkway", "Boulevard", "Drive", "Way")
MAILBOXES = ("ap", "accounts", "info", "billing", "office", "orders")
NOTES = (
    "Net 30", "Net 45, 2% 10", "Requires a PO number on every invoice",
    "Preferred supplier for {city} projects", "COI on file until {year}-03-31",
    "Remit to: PO Box {box}\n{city}, {state}",  # multi-line, as ERP exports carry them
)


# --- suppliers --------------------------------------------------------------------------------

SUPPLIERS_AT_SCALE_1 = 500
SUPPLIER_COLUMNS = (
    Column("supplier_code", "VARCHAR"), Column("name", "VARCHAR"),
    Column("abbreviated_name", "VARCHAR"), Column("trade", "VARCHAR"),
    Column("address", "VARCHAR"), Column("city", "VARCHAR"), Column("state_code", "VARCHAR"),
    Column("country_code", "VARCHAR"), Column("zip", "VARCHAR"),
    Column("business_phone", "VARCHAR"), Column("email_address", "VARCHAR"),
    Column("website", "VARCHAR"), Column("is_active", "BOOLEAN"), Column("notes", "VARCHAR"),
    Column("updated_at", "TIMESTAMPTZ"),
)
# Share of rows per defect; each appears at least once when the table is big enough.
BAD_SHARES = {"blank": 0.008, "invalid_country": 0.008, "invalid_state": 0.008, "too_long": 0.006}
DUPLICATE_PAIR_SHARE = 0.004
WARNING_SHARE = 0.004
UNICODE_SHARE = 0.012
UNICODE_KINDS = ("combining", "zero_width", "nbsp", "emoji", "rtl", "control")


def generate_suppliers(rng: random.Random, scale: float, now: datetime) -> TableData:
    count = max(1, round(SUPPLIERS_AT_SCALE_1 * scale))
    width = max(5, len(str(count)))
    rows = [_supplier(rng, f"S-{n:0{width}d}", now) for n in range(1, count + 1)]
    data = TableData("suppliers", "supplier_code", SUPPLIER_COLUMNS, rows)
    _spoil_suppliers(rng, data)
    return data


def _supplier(rng: random.Random, code: str, now: datetime) -> dict[str, Any]:
    country = "CA" if rng.random() < 0.25 else "US"
    city, state, area, zip_start = rng.choice(CITIES[country])
    trade = rng.choice(list(TRADES))
    stem = _name_stem(rng, trade)
    slug = re.sub(r"[^a-z0-9]", "", stem.lower())[:24]
    return {
        "supplier_code": code,
        "name": f"{stem} {rng.choice(SUFFIXES[country])}",
        "abbreviated_name": "".join(w[0] for w in re.findall(r"[A-Za-z]+", stem)).upper(),
        "trade": trade,
        "address": _street(rng),
        "city": city,
        "state_code": state,
        "country_code": country,
        "zip": _postal_code(rng, country, zip_start),
        "business_phone": _phone(rng, area),
        "email_address": f"{rng.choice(MAILBOXES)}@{slug}.example",
        "website": f"https://www.{slug}.example" if rng.random() < 0.85 else None,
        "is_active": rng.random() < 0.92,
        "notes": _note(rng, city, state, now),
        "updated_at": now - timedelta(seconds=rng.randrange(HISTORY_DAYS * 86_400)),
    }


def _name_stem(rng: random.Random, trade: str) -> str:
    word = rng.choice(TRADES[trade])
    shape = rng.random()
    if shape < 0.45:
        return f"{rng.choice(PLACES)} {word}"
    if shape < 0.8:
        return f"{rng.choice(SURNAMES)} {word}"
    first, second = rng.sample(SURNAMES, 2)
    return f"{first} & {second} {word}"


def _street(rng: random.Random) -> str:
    street = f"{rng.randint(10, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}"
    return f"{street}, Suite {rng.randint(1, 40) * 10}" if rng.random() < 0.2 else street


def _postal_code(rng: random.Random, country: str, start: str) -> str:
    if country == "US":
        return f"{start}{rng.randint(0, 99):02d}"
    letters = "ABCEGHJKLMNPRSTVXY"  # the letters Canada Post uses
    d1, d2, d3 = (rng.randint(0, 9) for _ in range(3))
    l1, l2 = (rng.choice(letters) for _ in range(2))
    return f"{start}{d1}{l1} {d2}{l2}{d3}"


def _phone(rng: random.Random, area: str) -> str:
    return f"({area}) 555-01{rng.randint(0, 99):02d}"


def _note(rng: random.Random, city: str, state: str, now: datetime) -> str | None:
    if rng.random() < 0.7:
        return None
    template = rng.choice(NOTES)
    return template.format(city=city, state=state, year=now.year + 1, box=rng.randint(100, 9999))


# --- defects: each spoils one row in one way and says how -------------------------------------

RTL_NAMES = ("مؤسسة النور للمقاولات", "בניין הצפון בע״מ")  # Arabic, Hebrew
INVALID_COUNTRIES = {"US": ("USA", "U.S.", "XX", "United States"), "CA": ("CAN", "Canada", "XX")}
INVALID_STATES = {"US": ("ZZ", "ON", "Colo.", "XY"), "CA": ("XX", "NY", "Ont.", "PQ")}
BLANKS = ("", "   ", "\t", " \u00a0 ")


def _blank_name(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    row["name"] = rng.choice(BLANKS)
    return {"field": "name", "problem": "blank", "value": row["name"]}


def _invalid_country(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    row["country_code"] = rng.choice(INVALID_COUNTRIES[row["country_code"]])
    return {"field": "country_code", "problem": "invalid_country", "value": row["country_code"]}


def _invalid_state(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    row["state_code"] = rng.choice(INVALID_STATES[row["country_code"]])
    return {"field": "state_code", "problem": "invalid_state", "value": row["state_code"]}


def _too_long_name(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    row["name"] = _padded(rng, row["name"] + " - division of", 300)
    return {"field": "name", "problem": "too_long", "length": 300, "limit": NAME_LIMIT}


def _long_notes(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    length = NOTES_LIMIT + rng.randint(500, 3000)
    row["notes"] = _padded(rng, "Supplier history:", length)
    return {"field": "notes", "problem": "truncated", "length": length, "limit": NOTES_LIMIT}


def _padded(rng: random.Random, start: str, length: int) -> str:
    """``start`` followed by words to exactly ``length`` characters, no space at either end."""
    words, size = [start], len(start)
    while size <= length:
        words.append(rng.choice(PLACES + SURNAMES))
        size += len(words[-1]) + 1
    return " ".join(words)[:length].rstrip().ljust(length, "x")


DEFECTS: dict[str, Callable[[random.Random, dict[str, Any]], dict[str, Any]]] = {
    "blank": _blank_name,
    "invalid_country": _invalid_country,
    "invalid_state": _invalid_state,
    "too_long": _too_long_name,
}


def _odd_unicode(rng: random.Random, row: dict[str, Any], kind: str) -> dict[str, Any]:
    """A valid name with odd characters; ``expected`` is the name Procore should end up with."""
    clean = row["name"]
    first, _, rest = clean.partition(" ")
    if kind == "combining":
        clean = f"{rng.choice(('Montréal', 'Lévis', 'Trois-Rivières', 'Gaspé'))} {rest}"
        raw = unicodedata.normalize("NFD", clean)
    elif kind == "zero_width":
        raw = f"\ufeff{first[:2]}\u200b{first[2:]}\u200d {rest}"
    elif kind == "nbsp":
        raw = clean.replace(" ", "\u00a0")
    elif kind == "emoji":
        clean = raw = f"{first} {rng.choice(('⚡', '🏗️', '🔧', '🚧'))} {rest}"
    elif kind == "rtl":
        clean = raw = f"{clean} {rng.choice(RTL_NAMES)}"
    else:  # control: a tab and a left-to-right mark pasted in from a spreadsheet
        raw = f"{first}\t\u200e{rest}"
    row["name"] = raw
    return {"field": "name", "problem": kind, "value": raw, "expected": clean}


def _spoil_suppliers(rng: random.Random, data: TableData) -> None:
    rows, plan = data.rows, _defect_plan(len(data.rows))
    chosen = iter(rng.sample(range(len(rows)), sum(plan.values()) + plan["duplicate"]))
    for problem, spoil in DEFECTS.items():
        for _ in range(plan[problem]):
            row = rows[next(chosen)]
            data.bad.append({"key": row["supplier_code"], **spoil(rng, row)})
    for _ in range(plan["duplicate"]):
        data.bad.append(_duplicate(rows[next(chosen)], rows[next(chosen)]))
    for _ in range(plan["warning"]):
        row = rows[next(chosen)]
        data.warnings.append({"key": row["supplier_code"], **_long_notes(rng, row)})
    for n in range(plan["unicode"]):
        row = rows[next(chosen)]
        kind = UNICODE_KINDS[n % len(UNICODE_KINDS)]
        data.unicode.append({"key": row["supplier_code"], **_odd_unicode(rng, row, kind)})


def _duplicate(original: dict[str, Any], copy: dict[str, Any]) -> dict[str, Any]:
    """Give ``copy`` the key of ``original``: two rows, one key, different names."""
    copy["supplier_code"] = original["supplier_code"]
    if copy["name"] == original["name"]:
        copy["name"] += " (old)"
    return {
        "key": original["supplier_code"],
        "field": "supplier_code",
        "problem": "duplicate",
        "rows": 2,
        "names": [original["name"], copy["name"]],
    }


def _defect_plan(rows: int) -> dict[str, int]:
    """How many rows get each defect: the shares, at least one each when that fits in half."""
    shares = {**BAD_SHARES, "duplicate": DUPLICATE_PAIR_SHARE, "warning": WARNING_SHARE}
    plan = {name: max(1, round(rows * share)) for name, share in shares.items()}
    plan["unicode"] = max(len(UNICODE_KINDS), round(rows * UNICODE_SHARE))
    if sum(plan.values()) + plan["duplicate"] > rows // 2:
        plan = {name: round(rows * share) for name, share in shares.items()}
        plan["unicode"] = round(rows * UNICODE_SHARE)
    return plan


GENERATORS: dict[str, Generator] = {"suppliers": generate_suppliers}


# --- writing ----------------------------------------------------------------------------------


def generate(
    out_dir: Path | str, *, scale: float = 1.0, seed: int = 42, now: datetime | None = None
) -> SampleSummary:
    """Write ``erp.duckdb``, ``templates/*.csv`` and ``expected.json`` into ``out_dir``."""
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    out = Path(out_dir)
    now = _aware(now or datetime.now(UTC)).replace(microsecond=0)
    # One stream per table, seeded by (seed, table): a new entity leaves the others unchanged.
    tables = [
        make(random.Random(f"{seed}:{name}"), scale, now) for name, make in GENERATORS.items()
    ]
    out.mkdir(parents=True, exist_ok=True)
    _write_duckdb(out / DUCKDB_FILE, tables)
    export_templates(out)
    expected = {data.table: data.expected() for data in tables}
    text = json.dumps(expected, indent=2, ensure_ascii=False) + "\n"
    (out / EXPECTED_FILE).write_text(text, encoding="utf-8")
    return SampleSummary(
        out_dir=out,
        seed=seed,
        scale=scale,
        now=now,
        rows={d.table: len(d.rows) for d in tables},
        bad={d.table: len(d.bad) for d in tables},
        warnings={d.table: len(d.warnings) for d in tables},
        unicode={d.table: len(d.unicode) for d in tables},
    )


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got {value.isoformat()}")
    return value.astimezone(UTC)


def _write_duckdb(path: Path, tables: Sequence[TableData]) -> None:
    """Build the file beside the target and swap it in, so no reader sees half a database."""
    building = path.with_name(path.name + ".building")
    for stale in (building, Path(f"{building}.wal")):
        stale.unlink(missing_ok=True)
    con = duckdb.connect(str(building))
    try:
        con.execute("SET TimeZone = 'UTC'")
        for data in tables:
            _write_table(con, data)
    finally:
        con.close()
    # A WAL left by an older file would be replayed into the new one.
    Path(f"{path}.wal").unlink(missing_ok=True)
    os.replace(building, path)


def _write_table(con: duckdb.DuckDBPyConnection, data: TableData) -> None:
    columns = ", ".join(f'"{c.name}" {c.sql_type}' for c in data.columns)
    con.execute(f'CREATE TABLE "{data.table}" ({columns})')
    # Column lists unnested in one statement: executemany would take seconds at 10,000 rows.
    selects = ", ".join(f"unnest(?::{c.sql_type}[])" for c in data.columns)
    values = [[row[c.name] for row in data.rows] for c in data.columns]
    con.execute(f'INSERT INTO "{data.table}" SELECT {selects}', values)


def export_templates(out_dir: Path | str) -> list[Path]:
    """(Re)write ``templates/<table>.csv`` from ``erp.duckdb``: both always hold the same rows."""
    out = Path(out_dir)
    folder = out / TEMPLATES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(out / DUCKDB_FILE), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        tables = [row[0] for row in con.execute(_TABLES).fetchall()]
        return [_export_table(con, table, folder / f"{table}.csv") for table in tables]
    finally:
        con.close()


_TABLES = (
    "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()"
    " AND schema_name = 'main' ORDER BY table_name"
)


def _export_table(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> Path:
    cursor = con.execute(f'SELECT * FROM "{table}" ORDER BY ALL')
    header = [column[0] for column in cursor.description]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([csv_value(value) for value in row] for row in cursor.fetchall())
    return path


def csv_value(value: Any) -> str:
    """How a DuckDB value is written in a CSV template."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return str(value)


# --- changes for demos ------------------------------------------------------------------------


def mutate(
    out_dir: Path | str, *, changes: int, seed: int = 1, now: datetime | None = None
) -> list[str]:
    """Give ``changes`` good suppliers a new phone number and ``updated_at = now``.

    A second sync then has exactly these records to update. The CSV templates are rewritten to
    match. Returns the changed supplier codes.
    """
    out = Path(out_dir)
    now = _aware(now or datetime.now(UTC))
    rng = random.Random(f"{seed}:mutate")
    bad = {item["key"] for item in _expected(out)["suppliers"]["bad"]}
    con = duckdb.connect(str(out / DUCKDB_FILE))
    try:
        phones = dict(con.execute("SELECT supplier_code, business_phone FROM suppliers").fetchall())
        keys = sorted(rng.sample(sorted(set(phones) - bad), min(changes, len(set(phones) - bad))))
        new_phones = [_new_phone(rng, phones[key]) for key in keys]
        con.execute(
            "UPDATE suppliers SET business_phone = c.phone, updated_at = ? FROM "
            "(SELECT unnest(?::VARCHAR[]) AS code, unnest(?::VARCHAR[]) AS phone) AS c "
            "WHERE suppliers.supplier_code = c.code",
            [now, keys, new_phones],
        )
    finally:
        con.close()
    export_templates(out)
    return keys


def _expected(out: Path) -> dict[str, Any]:
    return json.loads((out / EXPECTED_FILE).read_text("utf-8"))


def _new_phone(rng: random.Random, old: str | None) -> str:
    """Same area code, another fictional 555-01xx line."""
    area = old[1:4] if old and old.startswith("(") else "555"
    while (phone := _phone(rng, area)) == old:
        pass
    return phone
