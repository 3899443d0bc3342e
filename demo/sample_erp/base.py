"""What every table generator shares: the table model, the company built so far, and helpers.

A generator builds its rows good first, then spoils a few chosen rows (each gets exactly one
defect, recorded as a ``bad`` entry with the value that would fix it), and last derives its
``blocked`` entries: a row whose parent (another table's key it refers to) is bad or blocked is
blocked by the first such parent, in the order of the table's columns. Bad rows are chosen only
among rows whose parents are all good, so a row is never both bad and blocked.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from demo.sample_erp.words import CITIES, PLACES, STREET_TYPES, STREETS, SURNAMES

HISTORY_DAYS = 90
DESCRIPTION_LIMIT = 1_000  # what the sample treats as Procore's limit for descriptions: cut, warned

Row = dict[str, Any]
# A reference from a row to a parent: (the row's field, the parent table, the parent's key or None)
Ref = tuple[str, str, Callable[[Row], str | None]]


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str


def columns(spec: str) -> tuple[Column, ...]:
    """``"name TYPE, other TYPE"`` → columns; types may hold commas inside parentheses."""
    parts = re.findall(r"\s*(\w+) ([A-Z]+(?:\(\d+,\s*\d+\))?)\s*(?:,|$)", spec)
    return tuple(Column(name, sql_type) for name, sql_type in parts)


@dataclass
class TableData:
    """The rows of one ERP table and what a sync of them must report."""

    table: str
    key_field: str
    columns: tuple[Column, ...]
    rows: list[Row]
    bad: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    unicode: list[dict[str, Any]] = field(default_factory=list)

    def expected(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key_field": self.key_field,
            "rows": len(self.rows),
            "keys": len({row[self.key_field] for row in self.rows}),
            "bad": sorted(self.bad, key=lambda item: item["key"]),
            "blocked": sorted(self.blocked, key=lambda item: item["key"]),
            "warnings": sorted(self.warnings, key=lambda item: item["key"]),
            "unicode": sorted(self.unicode, key=lambda item: item["key"]),
        }


@dataclass
class Company:
    """The tables generated so far, which later tables refer to."""

    scale: float
    now: datetime
    tables: dict[str, TableData] = field(default_factory=dict)
    _status: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, data: TableData) -> None:
        status = dict.fromkeys((row[data.key_field] for row in data.rows), "good")
        status.update((item["key"], "blocked") for item in data.blocked)
        status.update((item["key"], "failed") for item in data.bad)
        self.tables[data.table], self._status[data.table] = data, status

    def count(self, at_scale_1: int) -> int:
        return max(1, round(at_scale_1 * self.scale))

    def status(self, table: str, key: str) -> str:
        """``good``, ``failed`` (bad), ``blocked``, or ``missing`` (no such key)."""
        return self._status[table].get(key, "missing")

    def keys(self, table: str, status: str = "good") -> list[str]:
        return [key for key, value in self._status[table].items() if value == status]

    def intended(self, table: str) -> dict[str, Row]:
        """The first row of each key as it would be without its defect (its ``fix`` applied)."""
        data = self.tables[table]
        rows: dict[str, Row] = {}
        for row in data.rows:
            rows.setdefault(row[data.key_field], row)
        for item in data.bad:
            if item.get("fix") and item["field"] != data.key_field:
                rows[item["key"]] = rows[item["key"]] | item["fix"]
        return rows

    def clean(self, row: Row, refs: Sequence[Ref]) -> bool:
        """Every parent of ``row`` exists and is good."""
        return all(
            (parent := parent_of(row)) is None or self.status(table, parent) == "good"
            for _, table, parent_of in refs
        )

    def block(self, data: TableData, refs: Sequence[Ref]) -> None:
        """Record every row that is not bad itself but has a bad or blocked parent."""
        bad = {item["key"] for item in data.bad}
        for row in data.rows:
            key = row[data.key_field]
            if key not in bad and (entry := self._blocked_by(row, refs)):
                data.blocked.append({"key": key, **entry})

    def _blocked_by(self, row: Row, refs: Sequence[Ref]) -> dict[str, Any] | None:
        for name, table, parent_of in refs:
            parent = parent_of(row)
            status = "good" if parent is None else self.status(table, parent)
            if status == "missing":  # only bad rows may point nowhere
                raise AssertionError(f"{name} {parent!r} is not in {table}: {row}")
            if status != "good":
                return {
                    "field": name,
                    "problem": f"parent_{status}",
                    "parent": {"table": table, "key": parent},
                }
        return None


class Spoiler:
    """Picks disjoint rows to spoil and records what was done to them."""

    def __init__(self, rng: random.Random, data: TableData, ok: Callable[[Row], bool]) -> None:
        self.rng, self.data, self.ok = rng, data, ok
        self.taken: set[int] = set()

    def pick(self, count: int, where: Callable[[Row], bool] = lambda row: True) -> list[Row]:
        candidates = [
            row for row in self.data.rows
            if id(row) not in self.taken and self.ok(row) and where(row)
        ]
        chosen = self.rng.sample(candidates, min(count, len(candidates)))
        self.taken.update(map(id, chosen))
        return chosen

    def spoil(self, row: Row, name: str, problem: str, value: Any, **extra: Any) -> None:
        """Set ``row[name] = value`` and record it as bad, with the original value as the fix."""
        fix = {name: row[name]}
        row[name] = value
        self.data.bad.append(
            {"key": row[self.data.key_field], "field": name, "problem": problem, "value": value,
             **extra, "fix": fix}
        )

    def warn(self, row: Row, name: str, length: int, limit: int = DESCRIPTION_LIMIT) -> None:
        row[name] = padded(self.rng, row[name] or "", length)
        self.data.warnings.append(
            {"key": row[self.data.key_field], "field": name, "problem": "truncated",
             "length": length, "limit": limit}
        )


def defect_counts(rows: int, shares: dict[str, float], room: float = 0.25) -> dict[str, int]:
    """How many rows get each defect: the shares, at least one each while that fits in ``room``
    of the rows (the categories listed first win when not all fit)."""
    counts = {name: max(1, round(rows * share)) for name, share in shares.items()}
    if sum(counts.values()) <= rows * room:
        return counts
    left = int(rows * room)
    counts = dict.fromkeys(shares, 0)
    for name in shares:
        if left > 0:
            counts[name], left = 1, left - 1
    return counts


# --- values -----------------------------------------------------------------------------------


def stamp(rng: random.Random, now: datetime) -> datetime:
    return now - timedelta(seconds=rng.randrange(HISTORY_DAYS * 86_400))


def day_between(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, max(0, (last - first).days)))


def street(rng: random.Random) -> str:
    line = f"{rng.randint(10, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_TYPES)}"
    return f"{line}, Suite {rng.randint(1, 40) * 10}" if rng.random() < 0.2 else line


def postal_code(rng: random.Random, country: str, start: str) -> str:
    if country == "US":
        return f"{start}{rng.randint(0, 99):02d}"
    letters = "ABCEGHJKLMNPRSTVXY"  # the letters Canada Post uses
    d1, d2, d3 = (rng.randint(0, 9) for _ in range(3))
    l1, l2 = (rng.choice(letters) for _ in range(2))
    return f"{start}{d1}{l1} {d2}{l2}{d3}"


def phone(rng: random.Random, area: str) -> str:
    return f"({area}) 555-01{rng.randint(0, 99):02d}"


def place(rng: random.Random, canada_share: float = 0.25) -> tuple[str, str, str, str, str]:
    """(country, city, state, area code, postal code start)."""
    country = "CA" if rng.random() < canada_share else "US"
    city, state, area, start = rng.choice(CITIES[country])
    return country, city, state, area, start


def padded(rng: random.Random, start: str, length: int) -> str:
    """``start`` followed by words to exactly ``length`` characters, no space at either end."""
    words, size = [start], len(start)
    while size <= length:
        words.append(rng.choice(PLACES + SURNAMES))
        size += len(words[-1]) + 1
    return " ".join(words)[:length].rstrip().ljust(length, "x")


CENT = Decimal("0.01")
UNIT = Decimal("0.0001")


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def split(total: Decimal, weights: Sequence[float]) -> list[Decimal]:
    """``total`` in parts proportional to ``weights``, in cents, summing exactly to ``total``."""
    whole = sum(weights)
    parts = [money(float(total) * weight / whole) for weight in weights]
    parts[-1] += total - sum(parts)
    return parts


def allocate(
    total: int, weights: dict[str, float], caps: dict[str, int], floor: int
) -> dict[str, int]:
    """``total`` items over keys in proportion to ``weights``, each at least ``floor`` and at
    most its cap (fewer than ``total`` in all when the caps do not hold it). Deterministic."""
    counts = {key: min(floor, caps[key]) for key in weights}
    left = total - sum(counts.values())
    while left > 0 and (room := [key for key in weights if counts[key] < caps[key]]):
        whole = sum(weights[key] for key in room)
        shares = {key: left * weights[key] / whole for key in room}
        step = {key: min(caps[key] - counts[key], int(shares[key])) for key in room}
        if not any(step.values()):  # the remainder, one each, largest shares first
            step = dict.fromkeys(sorted(room, key=lambda k: -shares[k])[:left], 1)
        for key, more in step.items():
            counts[key] += more
        left -= sum(step.values())
    return counts


def weighted(rng: random.Random, choices: Sequence[tuple[Any, float]]) -> Any:
    values, weights = zip(*choices)
    return rng.choices(values, weights=weights)[0]


def wbs_key(project: str, sub_job: str | None, cost_code: str, cost_type: str) -> str:
    return "|".join(part for part in (project, sub_job, cost_code, cost_type) if part)


def first_rows(rows: Iterable[Row], key_field: str) -> dict[str, Row]:
    found: dict[str, Row] = {}
    for row in rows:
        found.setdefault(row[key_field], row)
    return found
