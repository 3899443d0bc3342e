"""Fixing a bad row, as an operator would in the ERP: the row becomes good and so, in time, do
the rows it blocked.

``fix`` writes the value the row's ``expected.json`` entry names as ``fix``, sets ``updated_at``
to ``now``, rewrites the CSV templates, and updates ``expected.json`` (the row is no longer bad,
the rows it blocked, directly or through others, no longer blocked), so that file keeps
describing the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from demo.sample_erp.files import (
    DUCKDB_FILE,
    EXPECTED_FILE,
    aware,
    export_templates,
    read_expected,
    write_expected,
)

Changes = dict[str, tuple[Any, Any]]


@dataclass(frozen=True)
class Fix:
    """What ``fix`` did: the row's changed fields and the rows it no longer blocks."""

    table: str
    key: str
    changes: Changes  # field → (before, after), ``updated_at`` included
    released: dict[str, list[str]]  # table → keys that were blocked by this row, directly or not


def fix(out_dir: Path | str, table: str, key: str, *, now: datetime | None = None) -> Fix:
    """Rewrite bad row ``key`` of ``table`` to its entry's ``fix`` (for a duplicated key: the
    row named second gets a key of its own), with ``updated_at = now``.

    Raises ``ValueError`` for a row that is not bad, or whose key holds the wrong value (a WBS
    code or budget line on a combination that does not exist: the ERP deletes such a row, it
    cannot edit it into a good one).
    """
    out, now = Path(out_dir), aware(now or datetime.now(UTC))
    expected = read_expected(out)
    entry = next((item for item in expected[table]["bad"] if item["key"] == key), None)
    if entry is None:
        raise ValueError(f"{table} {key} is not a bad row in {out / EXPECTED_FILE}")
    if "fix" not in entry:
        raise ValueError(
            f"{table} {key} ({entry['problem']}) cannot be fixed in place: its key holds the wrong value"
        )
    key_field = expected[table]["key_field"]
    con = duckdb.connect(str(out / DUCKDB_FILE))
    try:
        con.execute("SET TimeZone = 'UTC'")
        if entry["field"] == key_field:
            changes = _rekey_second(con, table, key_field, entry, now)
        else:
            changes = _set(con, table, key_field, key, entry["fix"], now)
    finally:
        con.close()
    expected[table]["bad"].remove(entry)
    expected[table]["keys"] += entry["field"] == key_field
    released = _release(expected, table, key)
    write_expected(out, expected)
    export_templates(out)
    return Fix(table, key, changes, released)


def _set(
    con: duckdb.DuckDBPyConnection, table: str, key_field: str, key: str, values: dict[str, Any],
    now: datetime,
) -> Changes:
    fields = [*values, "updated_at"]
    where = f"WHERE {_quoted(key_field)} = ?"
    select = f"SELECT {', '.join(map(_quoted, fields))} FROM {_quoted(table)} {where}"
    before = con.execute(select, [key]).fetchone()
    assignments = ", ".join(f"{_quoted(name)} = ?" for name in fields)
    con.execute(f"UPDATE {_quoted(table)} SET {assignments} {where}", [*values.values(), now, key])
    after = con.execute(select, [key]).fetchone()
    assert before is not None and after is not None
    return {name: (old, new) for name, old, new in zip(fields, before, after)}


def _rekey_second(
    con: duckdb.DuckDBPyConnection, table: str, key_field: str, entry: dict[str, Any], now: datetime
) -> Changes:
    """Two rows share a key: the one named second gets the spare key from the entry."""
    new_key, second = entry["fix"][key_field], [entry["key"], entry["names"][1]]
    where = f"WHERE {_quoted(key_field)} = ? AND name = ?"
    stamp = con.execute(f"SELECT updated_at FROM {_quoted(table)} {where}", second).fetchone()
    con.execute(
        f"UPDATE {_quoted(table)} SET {_quoted(key_field)} = ?, updated_at = ? {where}",
        [new_key, now, *second],
    )
    return {key_field: (entry["key"], new_key), "updated_at": (stamp[0] if stamp else None, now)}


def _release(expected: dict[str, Any], table: str, key: str) -> dict[str, list[str]]:
    """Drop the blocked entries under (table, key), transitively; return their keys by table."""
    children: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for child_table, data in expected.items():
        for item in data["blocked"]:
            parent = (item["parent"]["table"], item["parent"]["key"])
            children.setdefault(parent, []).append((child_table, item["key"]))
    released: dict[str, list[str]] = {}
    frontier = [(table, key)]
    while frontier:
        for child in children.get(frontier.pop(), []):
            released.setdefault(child[0], []).append(child[1])
            frontier.append(child)
    for name, keys in released.items():
        gone = set(keys)
        expected[name]["blocked"] = [i for i in expected[name]["blocked"] if i["key"] not in gone]
    return {name: sorted(keys) for name, keys in released.items()}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
