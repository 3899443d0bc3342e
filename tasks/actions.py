"""A record on its way through the engine: mapped (``MappedRecord``), then planned (``Action``).

Values alone, with no I/O: ``tasks.mapping`` makes the first from an ERP row, ``tasks.plan`` the
second from the first and the record's state, and the writers, the outcomes and the report read
them. Every module of the engine can import them without importing another's logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from procore_sync.records import ActionKind


@dataclass(frozen=True)
class MappedRecord:
    key: str
    payload: dict[str, Any] | None
    payload_hash: str | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    blocked: str | None = None
    scope: dict[str, int] = field(default_factory=dict)
    source_updated_at: datetime | None = None
    line: int | None = None
    # ``error`` comes from outside the record (a parent missing from the ERP): read again later.
    outside: bool = False
    # ``blocked`` under a parent that failed (or waits under one that did).
    parent_failed: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.blocked is None


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    key: str
    payload: dict[str, Any] | None = None
    payload_hash: str | None = None
    procore_id: int | None = None
    message: str | None = None
    warnings: tuple[str, ...] = field(default=())
    scope: dict[str, int] = field(default_factory=dict)
    source_updated_at: datetime | None = None
    # A ``fail`` for a payload Procore refused before: its outcome keeps the refused hash.
    refused: bool = False
    # A ``fail`` whose cause is outside the record (a parent missing from the ERP, a project
    # the account may not write to): ordinary runs read it again (``tasks/healing.py``).
    outside: bool = False
    # A ``blocked`` whose parent failed or waits under one that did: the run says so.
    parent_failed: bool = False

    @property
    def writes(self) -> bool:
        return self.kind in ("create", "update")

    def item(self, with_id: bool = True) -> dict[str, Any]:
        """The item sent to Procore: the payload, plus ``id`` for a known record where the
        endpoint takes one (some line syncs match by origin_id only)."""
        assert self.payload is not None, "only create and update actions are sent"
        known = with_id and self.procore_id
        return {**self.payload, "id": self.procore_id} if known else dict(self.payload)
