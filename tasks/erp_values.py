"""Numbers, dates and timestamps as ERPs and spreadsheets write them: read exactly, or refused.

An ERP row's typed cells arrive as text (CSV), JSON values (an API) or database values. Read
leniently, ``1E+400`` becomes an infinite float, ``1_000`` and Arabic-Indic digits become numbers
nobody typed, ``-0`` hashes differently from ``0``, and a date column holding ``1767225600`` is
taken for a Unix time. ``erp_value`` runs before pydantic's own parsing and refuses those with a
message that says how to write the value (the caller adds the value itself); what it accepts, pydantic then parses as usual.

- Numbers: ASCII digits, an optional sign, decimal point and exponent (``1234.50``, ``1E+2``),
  finite, with at most ``MAX_DIGITS`` digits written out (what Procore's JSON numbers, doubles,
  hold exactly); zero has no sign.
- Dates: ISO 8601, ``YYYY-MM-DD`` (a midnight timestamp is a date too); never a number.
- Timestamps: text must be ISO 8601; numbers are left to pydantic (Unix time from an API).
"""

from __future__ import annotations

import math
import re
import typing
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic_core import PydanticCustomError

MAX_DIGITS = 15
_NUMBER = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[+-]?(nan|inf|infinity)", re.IGNORECASE)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ].*)?")


def erp_value(value: Any, annotation: Any) -> Any:
    """``value`` checked for the field's type (``Decimal | None``, ``date``...); others pass."""
    kinds = set(typing.get_args(annotation)) or {annotation}
    if Decimal in kinds:
        return _number(value)
    if datetime in kinds:
        return _timestamp(value)
    if date in kinds:
        return _date(value)
    return value


def _refuse(kind: str, message: str, value: Any) -> PydanticCustomError:
    return PydanticCustomError(kind, message, {"value": value})


def _number(value: Any) -> Any:
    if isinstance(value, bool):
        raise _refuse("erp_number", "a yes/no value is not a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise _refuse("erp_number", "not a finite number", value)
    if isinstance(value, str):
        text = value.strip()
        if _NOT_FINITE.fullmatch(text):
            raise _refuse("erp_number", "not a finite number", text)
        if not _NUMBER.fullmatch(text):
            raise _refuse("erp_number", "not a number: write digits with a decimal point only, "
                          "without thousands separators, currency or percent signs (e.g. 1234.50)", text)
        value = text
    if not isinstance(value, (str, int, float, Decimal)):
        return value  # pydantic names the wrong type
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return value
    if not number.is_finite():
        raise _refuse("erp_number", "not a finite number", str(value))
    if _digits(number) > MAX_DIGITS:
        raise _refuse("erp_number", "too large or too precise for Procore: at most "
                      f"{MAX_DIGITS} digits (e.g. 9999999999999.99)", str(value))
    return abs(number) if number == 0 else number  # -0 and 0 are one value, one hash


def _digits(number: Decimal) -> int:
    """Digits the number takes written out in full: 1E+27 takes 28, 0.0001 takes 5."""
    if number == 0:
        return 1
    exponent = number.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    return max(number.adjusted() + 1, 1) + max(-exponent, 0)


def _date(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise _refuse("erp_date", "a number, not a date: write it YYYY-MM-DD (e.g. 2026-12-31)", value)
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value.strip()):
        raise _refuse("erp_date", "not a date written YYYY-MM-DD (e.g. 2026-12-31)", value.strip())
    return value.strip() if isinstance(value, str) else value


def _timestamp(value: Any) -> Any:
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value.strip()):
        raise _refuse("erp_timestamp", "not a timestamp in ISO 8601 (e.g. 2026-12-31T08:30:00Z)",
                      value.strip())
    return value
