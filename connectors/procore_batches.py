"""Sync Action results: what Procore created or updated, and what it refused, item by item.

A sync call (reference §4.0) answers 200 even when items fail: ``entities`` holds the full
records it wrote and ``errors`` echoes each refused item with an ``errors`` map of field to
messages. Parsing that map is the only way to know what failed, so it is done here once and
every entity flow gets errors keyed by ``origin_id``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Procore's documented maximum per sync call.
MAX_SYNC_BATCH = 1000


@dataclass
class SyncItemError:
    item: dict[str, Any]  # the item as submitted (Procore echoes it)
    messages: dict[str, list[str]]

    @property
    def origin_id(self) -> str | None:
        value = self.item.get("origin_id")
        return None if value is None else str(value)

    @property
    def text(self) -> str:
        """Operator-readable, e.g. ``name: can't be blank; country_code: is not valid``."""
        return "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in self.messages.items())


@dataclass
class SyncResult:
    entities: list[dict[str, Any]] = field(default_factory=list)
    errors: list[SyncItemError] = field(default_factory=list)

    def by_origin_id(self) -> dict[str, dict[str, Any]]:
        return {str(e["origin_id"]): e for e in self.entities if e.get("origin_id") is not None}

    def errors_by_origin_id(self) -> dict[str, SyncItemError]:
        return {e.origin_id: e for e in self.errors if e.origin_id is not None}

    def extend(self, other: SyncResult) -> None:
        self.entities.extend(other.entities)
        self.errors.extend(other.errors)


def batches(items: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    size = max(1, min(size, MAX_SYNC_BATCH))
    for start in range(0, len(items), size):
        yield items[start : start + size]


def parse_sync_response(body: Any) -> SyncResult:
    """Read ``{"entities": [...], "errors": [...]}``; a plain list counts as all entities.

    (``budget_line_items/sync`` answers with a plain array.)
    """
    if isinstance(body, list):
        return SyncResult(entities=[e for e in body if isinstance(e, dict)])
    if not isinstance(body, dict):
        return SyncResult()
    entities = [e for e in body.get("entities") or [] if isinstance(e, dict)]
    errors = [_item_error(e) for e in body.get("errors") or [] if isinstance(e, dict)]
    return SyncResult(entities=entities, errors=errors)


def _item_error(echo: dict[str, Any]) -> SyncItemError:
    item = {key: value for key, value in echo.items() if key != "errors"}
    return SyncItemError(item=item, messages=_messages(echo.get("errors")))


def _messages(raw: Any) -> dict[str, list[str]]:
    # Tolerant: Procore's documented shape is {field: [messages]}, but be safe with strings.
    if isinstance(raw, dict):
        return {str(k): _as_list(v) for k, v in raw.items()}
    if raw in (None, "", [], {}):
        return {"base": ["rejected without a message"]}
    return {"base": _as_list(raw)}


def _as_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]
