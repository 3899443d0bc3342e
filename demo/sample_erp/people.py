"""Customers (project owners, billed on prime contracts) and employees."""

from __future__ import annotations

import random
import re
import unicodedata
from datetime import timedelta

from demo.sample_erp.base import (
    Company,
    Row,
    Spoiler,
    TableData,
    columns,
    defect_counts,
    phone,
    place,
    postal_code,
    stamp,
    street,
    weighted,
)
from demo.sample_erp.suppliers import blank_name
from demo.sample_erp.words import (
    COMPANY_DOMAIN,
    EMPLOYEE_SURNAMES,
    FIRST_NAMES,
    JOB_TITLES,
    MAILBOXES,
    OWNERS,
    PLACES,
)

CUSTOMER_COLUMNS = columns(
    "customer_code VARCHAR, name VARCHAR, address VARCHAR, city VARCHAR, state_code VARCHAR, "
    "country_code VARCHAR, zip VARCHAR, business_phone VARCHAR, email_address VARCHAR, "
    "is_active BOOLEAN, updated_at TIMESTAMPTZ"
)
EMPLOYEE_COLUMNS = columns(
    "employee_number VARCHAR, first_name VARCHAR, last_name VARCHAR, email_address VARCHAR, "
    "job_title VARCHAR, business_phone VARCHAR, is_active BOOLEAN, updated_at TIMESTAMPTZ"
)


def generate_customers(rng: random.Random, company: Company) -> TableData:
    taken: set[str] = set()
    rows = [_customer(rng, f"C-{n:04d}", company, taken) for n in range(1, company.count(50) + 1)]
    data = TableData("customers", "customer_code", CUSTOMER_COLUMNS, rows)
    plan = defect_counts(len(rows), {"blank": 0.03})
    for row in Spoiler(rng, data, lambda row: True).pick(plan["blank"]):
        data.bad.append({"key": row["customer_code"], **blank_name(rng, row)})
    return data


def _customer(rng: random.Random, code: str, company: Company, taken: set[str]) -> Row:
    country, city, state, area, start = place(rng, canada_share=0.2)
    name = _owner_name(rng, city)
    if name in taken:
        name = f"{name} {rng.choice(('West', 'East', 'North', 'South'))}"
    taken.add(name)
    slug = re.sub(r"[^a-z0-9]", "", name.lower())[:24]
    return {
        "customer_code": code,
        "name": name,
        "address": street(rng),
        "city": city,
        "state_code": state,
        "country_code": country,
        "zip": postal_code(rng, country, start),
        "business_phone": phone(rng, area),
        "email_address": f"{rng.choice(MAILBOXES)}@{slug}.example",
        "is_active": rng.random() < 0.95,
        "updated_at": stamp(rng, company.now),
    }


def _owner_name(rng: random.Random, city: str) -> str:
    if rng.random() < 0.15:
        return f"{rng.choice(('City', 'County', 'Port', 'Region'))} of {city}"
    return f"{rng.choice(PLACES)} {rng.choice(OWNERS)}"


# --- employees --------------------------------------------------------------------------------

EMPLOYEE_DEFECTS = {"invalid_email": 0.015, "duplicate_email": 0.005, "blank": 0.015}


def generate_employees(rng: random.Random, company: Company) -> TableData:
    emails: set[str] = set()
    count = company.count(200)
    rows = [_employee(rng, f"E-{n:05d}", company, emails) for n in range(1, count + 1)]
    data = TableData("employees", "employee_number", EMPLOYEE_COLUMNS, rows)
    _spoil_employees(rng, data)
    return data


def _employee(rng: random.Random, number: str, company: Company, emails: set[str]) -> Row:
    first, last = rng.choice(FIRST_NAMES), rng.choice(EMPLOYEE_SURNAMES)
    return {
        "employee_number": number,
        "first_name": first,
        "last_name": last,
        "email_address": _unique_email(first, last, emails),
        "job_title": weighted(rng, JOB_TITLES),
        "business_phone": phone(rng, rng.choice(("303", "720", "416", "604"))),
        "is_active": rng.random() < 0.92,
        "updated_at": stamp(rng, company.now),
    }


def _unique_email(first: str, last: str, taken: set[str]) -> str:
    stem = f"{_ascii(first)}.{_ascii(last)}"
    email, n = f"{stem}@{COMPANY_DOMAIN}", 1
    while email in taken:
        n += 1
        email = f"{stem}{n}@{COMPANY_DOMAIN}"
    taken.add(email)
    return email


def _ascii(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z]", "", plain.lower())


def _broken_email(rng: random.Random, email: str) -> str:
    local, _, domain = email.partition("@")
    shapes = (
        f"{local}@{domain.split('.')[0]}",  # no top-level domain
        f"{local}.{domain}",  # no @
        f"{local} @{domain}",  # a space
        f"{local}@@{domain}",
    )
    return rng.choice(shapes)


def _spoil_employees(rng: random.Random, data: TableData) -> None:
    plan = defect_counts(len(data.rows), EMPLOYEE_DEFECTS)
    spoiler = Spoiler(rng, data, lambda row: True)
    for row in spoiler.pick(plan["invalid_email"]):
        broken = _broken_email(rng, row["email_address"])
        spoiler.spoil(row, "email_address", "invalid_email", broken)
    for _ in range(plan["duplicate_email"]):
        _duplicate_email(data, spoiler.pick(2))
    for row in spoiler.pick(plan["blank"]):
        data.bad.append({"key": row["employee_number"], **blank_name(rng, row, "last_name")})


def _duplicate_email(data: TableData, pair: list[Row]) -> None:
    """The later of two employees (by key, and saved later) gets the first one's e-mail: Procore
    users are unique by e-mail, so the second fails and the first lands."""
    if len(pair) < 2:
        return
    first, second = sorted(pair, key=lambda row: row["employee_number"])
    if second["updated_at"] < first["updated_at"]:
        first["updated_at"], second["updated_at"] = second["updated_at"], first["updated_at"]
    elif second["updated_at"] == first["updated_at"]:
        first["updated_at"] -= timedelta(seconds=1)
    original, second["email_address"] = second["email_address"], first["email_address"]
    data.bad.append({
        "key": second["employee_number"],
        "field": "email_address",
        "problem": "duplicate",
        "value": first["email_address"],
        "keys": [first["employee_number"], second["employee_number"]],
        "fix": {"email_address": original},
    })
