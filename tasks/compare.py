"""Equal as an operator would judge: what the ERP sent against what Procore shows.

Reconciliation compares every mapped field with Procore's value, and ``PlanningWriter`` compares
the fields an update cannot carry with the record in its listing; both ask ``same``.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any


def same(expected: Any, actual: Any) -> bool:
    """Equal as an operator would judge: numbers by value, dates by their day, lists unordered."""
    if isinstance(expected, list):
        return _canonical_list(expected) == _canonical_list(actual or [], keys=_keys_of(expected))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, int | float) or _is_number(expected) and _is_number(actual):
        return _is_number(actual) and Decimal(str(expected)) == Decimal(str(actual))
    if isinstance(expected, str) and isinstance(actual, str) and len(expected) == 10 and expected[4] == "-":
        return actual[:10] == expected
    return expected == actual


def _is_number(value: Any) -> bool:
    try:
        Decimal(str(value))
    except (InvalidOperation, ValueError):
        return False
    return value is not None and not isinstance(value, bool)


def _keys_of(items: list) -> set[str] | None:
    return {k for item in items if isinstance(item, dict) for k in item} or None


def _canonical_list(items: list, keys: set[str] | None = None) -> list[str]:
    def pick(item: Any) -> Any:
        return {k: item.get(k) for k in sorted(keys or item)} if isinstance(item, dict) else item

    return sorted(json.dumps(pick(item), sort_keys=True, default=str) for item in items)
