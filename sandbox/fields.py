"""What a writable attribute is, declared as data, and how a request value becomes a stored one.

Each resource (``sandbox.resources``) lists its ``Field``s; ``sandbox.records`` enforces them
for every resource alike, so no resource has a hand-written validator. A field says its type, its
length limit, whether it must be present, its vocabulary, the kind it points at, and whether it
may change after create. Casting follows Rails: numbers become strings where a string is wanted,
"true"/"1" become booleans, and money may be a number or a numeric string.

Money is stored as a canonical decimal string ("1200.5", "0.0"), so 1200.50, "1200.5" and
"1200.50" are the same value: resending what is stored is recognisably a no-op. Views turn it
into the number or the string each response schema asks for.

Messages are Rails' own where Rails has one ("can't be blank", "is not a number", "is not
included in the list", "has already been taken"); the sandbox's own additions are "does not
exist" for a reference to no record and "is not a valid date".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from sandbox.validation import cast_boolean, cast_string

FieldType = Literal["string", "boolean", "integer", "money", "date", "enum", "reference"]

BLANK = "can't be blank"
TAKEN = "has already been taken"
INVALID = "is invalid"
NOT_A_NUMBER = "is not a number"
NOT_A_DATE = "is not a valid date"
NOT_IN_LIST = "is not included in the list"
DOES_NOT_EXIST = "does not exist"
CANNOT_CHANGE = "cannot be changed once created"


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType = "string"
    max_length: int | None = None
    required: bool = False  # present and not blank, on create and after every update
    choices: tuple[str, ...] = ()  # the vocabulary of an enum
    references: str | None = None  # the kind a reference points at
    create_only: bool = False  # may be given on create; a later change is an error
    default: Any = None


# --- declaring -------------------------------------------------------------------------------


def string(name: str, max_length: int | None = 255, *, required: bool = False) -> Field:
    return Field(name, "string", max_length, required)


def text(name: str) -> Field:
    return Field(name, "string", 10_000)


def boolean(name: str, default: bool | None = None) -> Field:
    return Field(name, "boolean", default=default)


def integer(name: str) -> Field:
    return Field(name, "integer")


def money(name: str, default: str | None = None) -> Field:
    return Field(name, "money", default=default)


def day(name: str) -> Field:
    return Field(name, "date")


def enum(name: str, choices: tuple[str, ...], *, default: str | None = None, required: bool = False) -> Field:
    return Field(name, "enum", choices=choices, default=default, required=required)


def reference(name: str, kind: str, *, required: bool = False, create_only: bool = False) -> Field:
    return Field(name, "reference", references=kind, required=required, create_only=create_only)


def origin_fields() -> tuple[Field, ...]:
    """``origin_id`` and ``origin_data``, which every ERP-synced resource carries."""
    return (string("origin_id"), Field("origin_data", "string"))


# --- casting ---------------------------------------------------------------------------------


class JsonNumber(float):
    """A JSON number as a request wrote it: the float every route reads, plus its digits, so
    money is stored with all of them (Procore's amounts are decimals; a float keeps ~16 digits)."""

    text: str

    def __new__(cls, text: str) -> JsonNumber:
        number = super().__new__(cls, text)
        number.text = text
        return number


def money_text(value: Decimal) -> str:
    """The canonical form: no exponent, no trailing zeros, at least one decimal ("10.0")."""
    text_ = format(value.normalize(), "f")
    return text_ if "." in text_ else f"{text_}.0"


def cast_money(value: Any) -> tuple[str | None, bool]:
    if value is None or value == "":
        return None, True
    if isinstance(value, bool):
        return None, False
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return None, False
        return money_text(Decimal(getattr(value, "text", None) or str(value))), True
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None, False
        return (money_text(number), True) if number.is_finite() else (None, False)
    return None, False


def cast_integer(value: Any) -> tuple[int | None, bool]:
    if value is None or value == "":
        return None, True
    if isinstance(value, int) and not isinstance(value, bool):
        return value, True
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value), True
    return None, False


def cast_date(value: Any) -> tuple[str | None, bool]:
    if value is None or value == "":
        return None, True
    if not isinstance(value, str) or len(value) != 10:
        return None, False
    try:
        date.fromisoformat(value)
    except ValueError:
        return None, False
    return value, True


def cast(field: Field, value: Any) -> tuple[Any, str | None]:
    """``(stored value, None)`` or ``(None, message)``."""
    if field.type == "boolean":
        flag, ok = cast_boolean(value)
        return (flag, None) if ok else (None, INVALID)
    if field.type in ("integer", "reference"):
        number, ok = cast_integer(value)
        return (number, None) if ok else (None, INVALID)
    if field.type == "money":
        amount, ok = cast_money(value)
        return (amount, None) if ok else (None, NOT_A_NUMBER)
    if field.type == "date":
        day_, ok = cast_date(value)
        return (day_, None) if ok else (None, NOT_A_DATE)
    words, ok = cast_string(value)
    if not ok:
        return None, INVALID
    if field.type == "enum" and words not in (None, "") and words not in field.choices:
        return None, NOT_IN_LIST
    if field.type == "enum" and words == "":
        return None, None
    return words, None


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def length_problem(field: Field, value: Any) -> str | None:
    if field.max_length is not None and isinstance(value, str) and len(value) > field.max_length:
        return f"is too long (maximum is {field.max_length} characters)"
    return None
