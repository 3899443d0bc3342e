"""List endpoints: Procore's filters and page headers.

Filters follow Procore's list conventions:

- ``filters[updated_at]`` / ``filters[created_at]``: ``<from>...<to>``, inclusive, each side an
  ISO 8601 instant with ``Z`` or an offset, or a bare date. A bare date means the whole day: the
  start of the day on the left, its last instant on the right. Either side may be left empty
  for an open range. Times without a zone are read as UTC.
- ``filters[origin_id]``: exact match. ``filters[id][]`` (or ``filters[id]``, as some endpoints
  declare it): any of the ids. ``filters[search]``: case-insensitive substring of name, notes or
  origin_code (of the fields an endpoint names).
- ``filters[<field>]`` for the fields an endpoint lists as ``exact``: equal to the stored value.

Each endpoint names the filters it supports, as Procore declares them per endpoint; others are
ignored, as Procore ignores them (the contract check reports them), so a client that relies on a
filter an endpoint lacks sees every record here too, not a silently narrowed list.

Pages are 1-based; ``per_page`` defaults to 100 and is clamped to 1..2000 (Procore's current
guidance caps it at 2,000; it answers larger values with fewer items rather than an error), or
to an endpoint's own maximum (300 for ``GET /rest/v1.1/projects``). The
answer carries ``Total``, ``Per-Page`` and a ``Link`` header with absolute ``first``, ``prev``,
``next`` and ``last`` URLs built from the request's own URL, so a client behind any base URL can
follow them; ``prev`` is absent on the first page and ``next`` on the last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from starlette.datastructures import URL

from sandbox.api_errors import ApiError

DEFAULT_PER_PAGE = 100
MAX_PER_PAGE = 2000
RANGE_SEPARATOR = "..."
VENDOR_FILTERS = ("updated_at", "created_at", "origin_id", "search")
SEARCH_FIELDS = ("name", "notes", "origin_code")


# --- filters ---------------------------------------------------------------------------------


def parse_instant(text: str, *, end_of_day: bool) -> datetime:
    """An ISO 8601 instant, date-only forms widened to the start or end of the day."""
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime.combine(day, time.max if end_of_day else time.min, UTC)
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_range(text: str) -> tuple[datetime | None, datetime | None]:
    """``<from>...<to>`` with optional sides; raises ValueError when malformed."""
    left, separator, right = text.partition(RANGE_SEPARATOR)
    if not separator or not (left.strip() or right.strip()):
        raise ValueError(text)
    start = parse_instant(left.strip(), end_of_day=False) if left.strip() else None
    stop = parse_instant(right.strip(), end_of_day=True) if right.strip() else None
    return start, stop


def _in_range(stamp: str, bounds: tuple[datetime | None, datetime | None]) -> bool:
    moment = datetime.fromisoformat(stamp)
    start, stop = bounds
    return (start is None or moment >= start) and (stop is None or moment <= stop)


def _time_filter(records: list[dict[str, Any]], field: str, text: str) -> list[dict[str, Any]]:
    try:
        bounds = parse_range(text)
    except ValueError:
        message = f"is not a valid range, expected <from>{RANGE_SEPARATOR}<to>"
        raise ApiError(400, {f"filters[{field}]": [message]}) from None
    return [record for record in records if _in_range(record[field], bounds)]


def _search(record: dict[str, Any], needle: str, fields: tuple[str, ...]) -> bool:
    haystack = (record.get(field) or "" for field in fields)
    return any(needle.lower() in text.lower() for text in haystack)


def _shown(value: Any) -> str:
    """A stored value as it appears in a query string."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _ids(values: list[str]) -> set[int]:
    try:
        return {int(value) for value in values}
    except ValueError:
        raise ApiError(400, {"filters[id]": ["is invalid"]}) from None


def apply_filters(
    records: list[dict[str, Any]],
    query: Mapping[str, Any],
    ids: list[str],
    *,
    supported: tuple[str, ...] = VENDOR_FILTERS,
    exact: tuple[str, ...] = (),
    search_fields: tuple[str, ...] = SEARCH_FIELDS,
) -> list[dict[str, Any]]:
    """The records that pass every supported ``filters[...]`` parameter of ``query``."""
    for field in ("updated_at", "created_at"):
        if field in supported and (text := query.get(f"filters[{field}]")) is not None:
            records = _time_filter(records, field, text)
    if "origin_id" in supported and (origin_id := query.get("filters[origin_id]")) is not None:
        records = [record for record in records if record.get("origin_id") == origin_id]
    if "search" in supported and (needle := query.get("filters[search]")) is not None:
        records = [record for record in records if _search(record, needle, search_fields)]
    for field in exact:
        if (wanted := query.get(f"filters[{field}]")) is not None:
            records = [record for record in records if _shown(record.get(field)) == wanted]
    if ids:
        wanted = _ids(ids)
        records = [record for record in records if record["id"] in wanted]
    return records


# --- pages -----------------------------------------------------------------------------------


def clamp_page(page: int | None, per_page: int | None, maximum: int = MAX_PER_PAGE) -> tuple[int, int]:
    size = min(DEFAULT_PER_PAGE, maximum) if per_page is None else min(max(per_page, 1), maximum)
    return max(page or 1, 1), size


def paginate(records: list[Any], page: int, per_page: int, url: URL) -> tuple[list[Any], dict[str, str]]:
    """One page of ``records`` and the ``Total`` / ``Per-Page`` / ``Link`` headers."""
    last = max(1, math.ceil(len(records) / per_page))
    rels = {
        "first": 1,
        "prev": page - 1 if page > 1 else None,
        "next": page + 1 if page < last else None,
        "last": last,
    }
    links = [
        f'<{url.include_query_params(page=number, per_page=per_page)}>; rel="{rel}"'
        for rel, number in rels.items()
        if number is not None
    ]
    headers = {"Total": str(len(records)), "Per-Page": str(per_page), "Link": ", ".join(links)}
    start = (page - 1) * per_page
    return records[start : start + per_page], headers
