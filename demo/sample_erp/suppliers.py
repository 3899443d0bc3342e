"""Suppliers: 500 per scale, with blank, invalid, too long and duplicate rows, over-long notes
(a warning) and names with odd but valid Unicode.

The random draws here must not change: other tests and benchmarks pin the supplier rows of a seed.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Callable
from datetime import datetime
from typing import Any

from demo.sample_erp.base import (
    Company,
    TableData,
    columns,
    padded,
    phone,
    postal_code,
    stamp,
    street,
)
from demo.sample_erp.words import (
    CITIES,
    MAILBOXES,
    NOTES,
    PLACES,
    SUFFIXES,
    SURNAMES,
    TRADES,
)

SUPPLIERS_AT_SCALE_1 = 500
NOTES_LIMIT = 10_000  # Procore's limit for vendor notes: longer notes are cut with a warning.
NAME_LIMIT = 255  # Procore's limit for vendor names: longer names fail.
SUPPLIER_COLUMNS = columns(
    "supplier_code VARCHAR, name VARCHAR, abbreviated_name VARCHAR, trade VARCHAR, "
    "address VARCHAR, city VARCHAR, state_code VARCHAR, country_code VARCHAR, zip VARCHAR, "
    "business_phone VARCHAR, email_address VARCHAR, website VARCHAR, is_active BOOLEAN, "
    "notes VARCHAR, updated_at TIMESTAMPTZ"
)
# Share of rows per defect; each appears at least once when the table is big enough.
BAD_SHARES = {"blank": 0.008, "invalid_country": 0.008, "invalid_state": 0.008, "too_long": 0.006}
DUPLICATE_PAIR_SHARE = 0.004
WARNING_SHARE = 0.004
UNICODE_SHARE = 0.012
UNICODE_KINDS = ("combining", "zero_width", "nbsp", "emoji", "rtl", "control")


def generate_suppliers(rng: random.Random, company: Company) -> TableData:
    count = max(1, round(SUPPLIERS_AT_SCALE_1 * company.scale))
    width = max(5, len(str(count)))
    rows = [_supplier(rng, f"S-{n:0{width}d}", company.now) for n in range(1, count + 1)]
    data = TableData("suppliers", "supplier_code", SUPPLIER_COLUMNS, rows)
    spare_codes = (f"S-{n:0{width}d}" for n in range(count + 1, 2 * count + 2))
    _spoil_suppliers(rng, data, spare_codes)
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
        "address": street(rng),
        "city": city,
        "state_code": state,
        "country_code": country,
        "zip": postal_code(rng, country, zip_start),
        "business_phone": phone(rng, area),
        "email_address": f"{rng.choice(MAILBOXES)}@{slug}.example",
        "website": f"https://www.{slug}.example" if rng.random() < 0.85 else None,
        "is_active": rng.random() < 0.92,
        "notes": _note(rng, city, state, now),
        "updated_at": stamp(rng, now),
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


def _note(rng: random.Random, city: str, state: str, now: datetime) -> str | None:
    if rng.random() < 0.7:
        return None
    template = rng.choice(NOTES)
    return template.format(city=city, state=state, year=now.year + 1, box=rng.randint(100, 9999))


# --- defects: each spoils one row in one way and says how (and how to undo it) ----------------

RTL_NAMES = ("مؤسسة النور للمقاولات", "בניין הצפון בע״מ")  # Arabic, Hebrew
INVALID_COUNTRIES = {"US": ("USA", "U.S.", "XX", "United States"), "CA": ("CAN", "Canada", "XX")}
INVALID_STATES = {"US": ("ZZ", "ON", "Colo.", "XY"), "CA": ("XX", "NY", "Ont.", "PQ")}
BLANKS = ("", "   ", "\t", " \u00a0 ")


def blank_name(rng: random.Random, row: dict[str, Any], field: str = "name") -> dict[str, Any]:
    original, row[field] = row[field], rng.choice(BLANKS)
    return {"field": field, "problem": "blank", "value": row[field], "fix": {field: original}}


def invalid_country(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    original = row["country_code"]
    row["country_code"] = rng.choice(INVALID_COUNTRIES[original])
    return {"field": "country_code", "problem": "invalid_country", "value": row["country_code"],
            "fix": {"country_code": original}}


def invalid_state(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    original = row["state_code"]
    row["state_code"] = rng.choice(INVALID_STATES[row["country_code"]])
    return {"field": "state_code", "problem": "invalid_state", "value": row["state_code"],
            "fix": {"state_code": original}}


def _too_long_name(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    original = row["name"]
    row["name"] = padded(rng, row["name"] + " - division of", 300)
    return {"field": "name", "problem": "too_long", "length": 300, "limit": NAME_LIMIT,
            "fix": {"name": original}}


def _long_notes(rng: random.Random, row: dict[str, Any]) -> dict[str, Any]:
    length = NOTES_LIMIT + rng.randint(500, 3000)
    row["notes"] = padded(rng, "Supplier history:", length)
    return {"field": "notes", "problem": "truncated", "length": length, "limit": NOTES_LIMIT}


DEFECTS: dict[str, Callable[[random.Random, dict[str, Any]], dict[str, Any]]] = {
    "blank": blank_name,
    "invalid_country": invalid_country,
    "invalid_state": invalid_state,
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


def _spoil_suppliers(rng: random.Random, data: TableData, spare_codes: Any) -> None:
    rows, plan = data.rows, _defect_plan(len(data.rows))
    chosen = iter(rng.sample(range(len(rows)), sum(plan.values()) + plan["duplicate"]))
    for problem, spoil in DEFECTS.items():
        for _ in range(plan[problem]):
            row = rows[next(chosen)]
            data.bad.append({"key": row["supplier_code"], **spoil(rng, row)})
    for _ in range(plan["duplicate"]):
        entry = duplicate(rows[next(chosen)], rows[next(chosen)], "supplier_code")
        data.bad.append(entry | {"fix": {"supplier_code": next(spare_codes)}})
    for _ in range(plan["warning"]):
        row = rows[next(chosen)]
        data.warnings.append({"key": row["supplier_code"], **_long_notes(rng, row)})
    for n in range(plan["unicode"]):
        row = rows[next(chosen)]
        kind = UNICODE_KINDS[n % len(UNICODE_KINDS)]
        data.unicode.append({"key": row["supplier_code"], **_odd_unicode(rng, row, kind)})


def duplicate(original: dict[str, Any], copy: dict[str, Any], key_field: str) -> dict[str, Any]:
    """Give ``copy`` the key of ``original``: two rows, one key, different names.

    The fix (added by the caller) gives the copy, the row named second, a key of its own.
    """
    copy[key_field] = original[key_field]
    if copy["name"] == original["name"]:
        copy["name"] += " (old)"
    return {
        "key": original[key_field],
        "field": key_field,
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
