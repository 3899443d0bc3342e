"""Edits after generation, for demos and tests: a few good rows change, as in a working ERP.

Each edit sets ``updated_at`` to ``now`` on the rows it changes and rewrites the CSV templates,
so a second sync has exactly those rows to update. Only rows that sync cleanly are chosen, so
expected.json stays true.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from demo.sample_erp.base import UNIT, Row, money, phone
from demo.sample_erp.files import (
    DUCKDB_FILE,
    aware,
    export_templates,
    insert_rows,
    read_expected,
)
from demo.sample_erp.words import JOB_TITLES


def mutate(
    out_dir: Path | str, *, changes: int, seed: int = 1, now: datetime | None = None
) -> list[str]:
    """Give ``changes`` good suppliers a new phone number and ``updated_at = now``.

    A second sync then has exactly these records to update. The CSV templates are rewritten to
    match. Returns the changed supplier codes.
    """
    out = Path(out_dir)
    now = aware(now or datetime.now(UTC))
    rng = random.Random(f"{seed}:mutate")
    bad = {item["key"] for item in read_expected(out)["suppliers"]["bad"]}
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


def _new_phone(rng: random.Random, old: str | None) -> str:
    """Same area code, another fictional 555-01xx line."""
    area = old[1:4] if old and old.startswith("(") else "555"
    while (phone_number := phone(rng, area)) == old:
        pass
    return phone_number


# --- other tables -----------------------------------------------------------------------------


def _revised(field: str) -> Callable[[random.Random, Row], None]:
    def change(rng: random.Random, row: Row) -> None:
        row[field] = f"{row[field]} (revised)"

    return change


def _amount(rng: random.Random, row: Row) -> None:
    """A new amount; where the line has quantity × unit cost, a new quantity that makes it."""
    if row.get("quantity") is not None:
        factor = Decimal(rng.choice(("1.1", "1.25", "0.9")))
        row["quantity"] = (row["quantity"] * factor).quantize(UNIT)
        row["amount"] = money(row["quantity"] * row["unit_cost"])
    else:
        row["amount"] = money(row["amount"] * Decimal(str(round(rng.uniform(1.02, 1.2), 3))))


def _completion(rng: random.Random, row: Row) -> None:
    row["completion_date"] += timedelta(days=rng.randint(7, 60))


def _customer_phone(rng: random.Random, row: Row) -> None:
    row["business_phone"] = _new_phone(rng, row["business_phone"])


def _job_title(rng: random.Random, row: Row) -> None:
    row["job_title"] = rng.choice([title for title, _ in JOB_TITLES if title != row["job_title"]])


def _touch(rng: random.Random, row: Row) -> None:
    """Only ``updated_at`` changes: a sync reads the row again and finds nothing to send."""


MUTATIONS: dict[str, Callable[[random.Random, Row], None]] = {
    "projects": _completion,
    "customers": _customer_phone,
    "employees": _job_title,
    "cost_types": _revised("name"),
    "standard_cost_codes": _revised("name"),
    "sub_jobs": _revised("name"),
    "project_cost_codes": _touch,
    "wbs_codes": _revised("description"),
    "budget_lines": _amount,
    "prime_contracts": _revised("description"),
    "prime_contract_lines": _amount,
    "subcontracts": _revised("description"),
    "subcontract_lines": _amount,
    "purchase_orders": _revised("description"),
    "purchase_order_lines": _amount,
    "direct_costs": _revised("description"),
    "direct_cost_lines": _amount,
}


def mutate_table(
    out_dir: Path | str, table: str, *, changes: int, seed: int = 1, now: datetime | None = None
) -> list[str]:
    """Change ``changes`` rows of ``table`` that sync cleanly (not bad, blocked or warned
    about), as ``MUTATIONS`` says, with ``updated_at = now``. Returns their keys, sorted.

    Suppliers change as ``mutate`` changes them.
    """
    if table == "suppliers":
        return mutate(out_dir, changes=changes, seed=seed, now=now)
    if table not in MUTATIONS:
        known = ", ".join(["suppliers", *MUTATIONS])
        raise ValueError(f"unknown table {table!r}; known: {known}")
    out, now = Path(out_dir), aware(now or datetime.now(UTC))
    rng = random.Random(f"{seed}:mutate:{table}")
    expected = read_expected(out)[table]
    con = duckdb.connect(str(out / DUCKDB_FILE))
    try:
        con.execute("SET TimeZone = 'UTC'")
        key_field, types, rows = _read(con, table)
        keys = _clean_keys(expected, [row[key_field] for row in rows])
        keys = sorted(rng.sample(keys, min(changes, len(keys))))
        changed = [row for row in rows if row[key_field] in set(keys)]
        for row in changed:
            MUTATIONS[table](rng, row)
            row["updated_at"] = now
        _replace(con, table, key_field, types, changed)
    finally:
        con.close()
    export_templates(out)
    return keys


def _clean_keys(expected: dict[str, Any], keys: list[str]) -> list[str]:
    unclean = {item["key"] for part in ("bad", "blocked", "warnings") for item in expected[part]}
    seen: set[str] = set()
    repeated = {key for key in keys if key in seen or seen.add(key)}  # type: ignore[func-returns-value]
    return sorted(set(keys) - unclean - repeated)


def _read(
    con: duckdb.DuckDBPyConnection, table: str
) -> tuple[str, list[tuple[str, str]], list[Row]]:
    """The key column (the first), the column types and the rows of ``table``."""
    types = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database()"
        " AND schema_name = 'main' AND table_name = ? ORDER BY column_index",
        [table],
    ).fetchall()
    cursor = con.execute(f'SELECT * FROM "{table}"')
    names = [column[0] for column in cursor.description]
    rows = [dict(zip(names, row)) for row in cursor.fetchall()]
    return types[0][0], [(name, sql_type) for name, sql_type in types], rows


def _replace(
    con: duckdb.DuckDBPyConnection, table: str, key_field: str, types: list[tuple[str, str]],
    rows: list[Row],
) -> None:
    keys = [row[key_field] for row in rows]
    where = f'"{key_field}" IN (SELECT unnest(?::VARCHAR[]))'
    con.execute(f'DELETE FROM "{table}" WHERE {where}', [keys])
    insert_rows(con, table, types, rows)
