"""Vendor validation, answered the way Procore's Rails back end answers.

Two steps, both returning Rails-style errors (``{"field": ["message", ...]}``):

1. ``writable_changes`` keeps the writable vendor fields of a request and ignores the rest, as
   Procore ignores unknown parameters (the contract check in ``sandbox.contract`` is what catches
   a client sending fields Procore does not know). Scalars are cast like Rails casts them.
2. ``record_errors`` checks the record as it would be after the write (existing values merged
   with the changes), so an update that only sets ``state_code`` is checked against the stored
   ``country_code``.

Procore's OpenAPI gives no length limits; the limits below are the sandbox's own, chosen to match
typical Procore column sizes, and are the same for create, update and sync.
"""

from __future__ import annotations

import re
from typing import Any

from sandbox.iso3166 import is_country, is_subdivision

Errors = dict[str, list[str]]

# Writable string fields and their maximum length (None: unlimited).
STRING_FIELDS: dict[str, int | None] = {
    "name": 255,
    "abbreviated_name": 255,
    "trade_name": 255,
    "address": 255,
    "city": 255,
    "state_code": 255,
    "country_code": 255,
    "zip": 20,
    "business_phone": 40,
    "mobile_phone": 40,
    "fax_number": 40,
    "email_address": 255,
    "website": 255,
    "notes": 10000,
    "license_number": 255,
    "labor_union": 255,
    "origin_id": 255,
    "origin_code": 255,
    "origin_data": None,
}

BOOLEAN_FIELDS: tuple[str, ...] = (
    "is_active",
    "authorized_bidder",
    "prequalified",
    "union_member",
    "non_union_prevailing_wage",
)

# Deliberately loose: one "@", something on both sides, a dot in the domain.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
TRUE_STRINGS = {"true", "1", "t", "yes"}
FALSE_STRINGS = {"false", "0", "f", "no"}


def add_error(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def cast_string(value: Any) -> tuple[str | None, bool]:
    """Rails casts numbers to strings and rejects structures; returns (value, ok)."""
    if value is None or isinstance(value, str):
        return value, True
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value), True
    return None, False


def cast_boolean(value: Any) -> tuple[bool | None, bool]:
    if value is None or isinstance(value, bool):
        return value, True
    text = str(value).strip().lower()
    if text in TRUE_STRINGS:
        return True, True
    if text in FALSE_STRINGS:
        return False, True
    return None, False


def writable_changes(attrs: dict[str, Any]) -> tuple[dict[str, Any], Errors]:
    """The known writable fields of ``attrs``, cast; unknown keys are ignored."""
    changes: dict[str, Any] = {}
    errors: Errors = {}
    for field, value in attrs.items():
        cast: Any
        if field in STRING_FIELDS:
            cast, ok = cast_string(value)
        elif field in BOOLEAN_FIELDS:
            cast, ok = cast_boolean(value)
        else:
            continue
        if ok:
            changes[field] = cast
        else:
            add_error(errors, field, "is invalid")
    return changes, errors


def record_errors(record: dict[str, Any]) -> Errors:
    """Errors of a vendor record as it would be stored."""
    errors: Errors = {}
    name = record.get("name")
    if name is None or not name.strip():
        add_error(errors, "name", "can't be blank")
    check_lengths(record, errors)
    check_address(record, errors)
    email = record.get("email_address")
    if email and not EMAIL_PATTERN.match(email):
        add_error(errors, "email_address", "is invalid")
    return errors


def check_lengths(record: dict[str, Any], errors: Errors) -> None:
    for field, limit in STRING_FIELDS.items():
        value = record.get(field)
        if limit is not None and isinstance(value, str) and len(value) > limit:
            add_error(errors, field, f"is too long (maximum is {limit} characters)")


def check_address(record: dict[str, Any], errors: Errors) -> None:
    # Empty strings clear the field, so they are not codes to check.
    country = record.get("country_code") or None
    state = record.get("state_code") or None
    if country is not None and not is_country(country):
        add_error(errors, "country_code", "is not a valid ISO-3166 alpha-2 country code")
        return
    if country is not None and state is not None and not is_subdivision(country, state):
        add_error(errors, "state_code", f"is not a valid ISO-3166-2 subdivision code for {country}")
