"""The sandbox's data: every kind of record, in memory, optionally mirrored to a JSON file.

The store knows nothing about HTTP or validation; it hands out ids, stamps ``created_at`` and
``updated_at`` from the injected clock and keeps records as plain dicts. Callers change records
through ``insert`` / ``update`` / ``touch`` / ``delete`` (or the vendor shorthands) and then
call ``commit`` once per request, which writes the whole store to ``data_file`` (temp file +
``os.replace``, so a crash never leaves half a file). A sync of 1,000 items is thus one file
write, not 1,000.

Every kind lives in one ``Collection``: records grouped by *scope*, the company for company-level
kinds (vendors, projects, cost types, users, ...) and the project for project-level ones (cost
codes, contracts, direct costs, ...). ``origin_id`` is indexed per *company* whatever the scope,
because Procore keeps it unique per company and resource type: a project-level record cannot
reuse an origin_id another project of the same company holds.

Ids come from one counter shared by all kinds and start above 2**49, as ids in Procore's newer
regions do, so a client that squeezes ids into 32 bits fails here rather than in production.

Records are the resources' writable fields plus ``id``, ``created_at`` and ``updated_at`` (and
``project_id`` for project-level kinds); views decide what Procore shows of them.

Every change goes through ``insert`` / ``update`` / ``touch`` / ``delete``, so this is where the
sandbox sees what changed: each one is noted (``Change``: created, updated or deleted; an update
that sets ``deleted_at``, a soft delete, counts as a delete) and ``commit`` hands the request's
changes, one per record, to the listeners (``on_commit``: the webhooks).

Two things exist before anyone writes: each company named at construction gets one standard cost
code list (Procore companies always have one) and Resource Planning's groups, and ``reset`` puts
them back. Resource Planning's records (``rp_*``) have UUID ids, as in Procore.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

FIRST_ID = 562_949_953_421_313
Record = dict[str, Any]


class Change(NamedTuple):
    """One record's change in one request: ``event`` is "create", "update" or "delete"."""

    kind: str
    scope_id: int
    company_id: int
    record_id: int | str
    event: str


# What one request did to a record, whatever it did in between: a create then updates is a create.
_FOLD = {("create", "update"): "create", ("create", "delete"): "delete", ("update", "create"): "create"}

# Kinds whose scope is the company; every other kind is scoped by project.
COMPANY_KINDS: tuple[str, ...] = (
    "vendors",
    "projects",
    "standard_cost_code_lists",
    "standard_cost_codes",
    "line_item_types",
    "users",
    "rp_groups",
    "rp_people",
    "rp_projects",
)
# Resource Planning (workforce-planning v2) names its records by UUID.
UUID_KINDS: tuple[str, ...] = ("rp_groups", "rp_people", "rp_projects")
# The groups a Resource Planning company starts with (regions and divisions).
PLANNING_GROUPS = ("Field Operations", "North Region", "South Region", "Civil")
PROJECT_KINDS: tuple[str, ...] = (
    "cost_codes",
    "sub_jobs",
    "wbs_codes",
    "budget_views",
    "budget_line_items",
    "prime_contracts",
    "prime_contract_line_items",
    "work_order_contracts",
    "work_order_contract_line_items",
    "purchase_order_contracts",
    "purchase_order_contract_line_items",
    "direct_costs",
    "direct_cost_line_items",
    "commitment_change_orders",
    "commitment_change_order_line_items",
    "prime_change_orders",
    "prime_change_order_line_items",
    "change_order_packages",
    "budget_changes",
    "budget_change_adjustment_line_items",
    "budget_modifications",
)
KINDS = COMPANY_KINDS + PROJECT_KINDS
STANDARD_COST_CODE_LIST = {
    "name": "Standard Cost Codes",
    "available_to_use_on_new_projects": True,
    "is_erp_list": False,
}


def iso_utc(unix_seconds: float) -> str:
    """Procore's timestamp form: ISO 8601, UTC, whole seconds, ``Z``."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Collection:
    """The records of one kind: ``scope id -> record id -> record``, plus two indexes."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.records: dict[int, dict[int, Record]] = {}
        self.scope_of: dict[int, int] = {}  # record id -> scope id
        # company id -> origin_id -> record id; syncs look items up by origin_id, so keep it O(1).
        self.by_origin: dict[int, dict[str, int]] = {}

    def add(self, scope_id: int, company_id: int, record: Record) -> None:
        self.records.setdefault(scope_id, {})[record["id"]] = record
        self.scope_of[record["id"]] = scope_id
        self.index_origin(company_id, None, record)

    def index_origin(self, company_id: int, old_origin_id: str | None, record: Record) -> None:
        index = self.by_origin.setdefault(company_id, {})
        if old_origin_id is not None and index.get(old_origin_id) == record["id"]:
            del index[old_origin_id]
        if record.get("origin_id") is not None:
            index[record["origin_id"]] = record["id"]

    def clear(self) -> None:
        self.records.clear()
        self.scope_of.clear()
        self.by_origin.clear()


SAVE_INTERVAL_S = 1.0


class Store:
    def __init__(
        self, clock: Callable[[], float], data_file: Path | None = None, companies: Iterable[int] = (1,)
    ) -> None:
        self._clock = clock
        self._data_file = data_file
        self._dirty, self._saved_at = False, float("-inf")
        self._companies = tuple(companies)
        self._collections = {kind: Collection(kind) for kind in KINDS}
        self._next_id = FIRST_ID
        self._changes: dict[tuple[str, int | str], Change] = {}
        self._listeners: list[Callable[[list[Change]], None]] = []
        if data_file is not None and data_file.exists():
            self._load(data_file)
        self._seed()
        self._changes.clear()  # what every company starts with is no one's change

    # --- reading, any kind ---------------------------------------------------------------------

    def records(self, kind: str, scope_id: int | None = None) -> list[Record]:
        """Copies of the records of ``kind`` in one company or project (every one of them when
        ``scope_id`` is None), sorted by id."""
        scopes = self._collections[kind].records
        if scope_id is None:
            merged = {
                record_id: record for records in scopes.values() for record_id, record in records.items()
            }
        else:
            merged = scopes.get(scope_id, {})
        return [dict(merged[record_id]) for record_id in sorted(merged)]

    def scan(self, kind: str, scope_id: int) -> Iterator[Record]:
        """The stored records of one scope themselves, unsorted and uncopied, for checks that
        read every record per item (uniqueness): read them, never change them."""
        return iter(self._collections[kind].records.get(scope_id, {}).values())

    def record(self, kind: str, scope_id: int, record_id: int) -> Record | None:
        record = self._collections[kind].records.get(scope_id, {}).get(record_id)
        return dict(record) if record is not None else None

    def scope_of(self, kind: str, record_id: int) -> int | None:
        """The company or project a record of ``kind`` belongs to, whichever it is."""
        return self._collections[kind].scope_of.get(record_id)

    def by_origin_id(self, kind: str, company_id: int, origin_id: str) -> Record | None:
        """The record of ``kind`` holding ``origin_id`` anywhere in the company."""
        collection = self._collections[kind]
        record_id = collection.by_origin.get(company_id, {}).get(origin_id)
        if record_id is None:
            return None
        return self.record(kind, collection.scope_of[record_id], record_id)

    def company_of(self, kind: str, scope_id: int) -> int:
        """The company a scope belongs to: itself for company kinds, the project's for the rest."""
        if kind in COMPANY_KINDS:
            return scope_id
        company_id = self._collections["projects"].scope_of.get(scope_id)
        if company_id is None:
            raise KeyError(f"project {scope_id} does not exist")
        return company_id

    # --- reading, typed shorthands for tests and reconciliation ---------------------------------

    def vendors(self, company_id: int) -> list[Record]:
        return self.records("vendors", company_id)

    def vendor(self, company_id: int, vendor_id: int) -> Record | None:
        return self.record("vendors", company_id, vendor_id)

    def vendor_by_origin_id(self, company_id: int, origin_id: str) -> Record | None:
        return self.by_origin_id("vendors", company_id, origin_id)

    def projects(self, company_id: int) -> list[Record]:
        return self.records("projects", company_id)

    def project(self, company_id: int, project_id: int) -> Record | None:
        return self.record("projects", company_id, project_id)

    def standard_cost_code_lists(self, company_id: int) -> list[Record]:
        return self.records("standard_cost_code_lists", company_id)

    def standard_cost_codes(self, company_id: int) -> list[Record]:
        return self.records("standard_cost_codes", company_id)

    def line_item_types(self, company_id: int) -> list[Record]:
        return self.records("line_item_types", company_id)

    def users(self, company_id: int) -> list[Record]:
        return self.records("users", company_id)

    def cost_codes(self, project_id: int) -> list[Record]:
        return self.records("cost_codes", project_id)

    def sub_jobs(self, project_id: int) -> list[Record]:
        return self.records("sub_jobs", project_id)

    def wbs_codes(self, project_id: int) -> list[Record]:
        return self.records("wbs_codes", project_id)

    def budget_views(self, project_id: int) -> list[Record]:
        return self.records("budget_views", project_id)

    def budget_line_items(self, project_id: int) -> list[Record]:
        return self.records("budget_line_items", project_id)

    def prime_contracts(self, project_id: int) -> list[Record]:
        return self.records("prime_contracts", project_id)

    def work_order_contracts(self, project_id: int) -> list[Record]:
        return self.records("work_order_contracts", project_id)

    def purchase_order_contracts(self, project_id: int) -> list[Record]:
        return self.records("purchase_order_contracts", project_id)

    def direct_costs(self, project_id: int) -> list[Record]:
        return self.records("direct_costs", project_id)

    def line_items(self, kind: str, project_id: int, **where: Any) -> list[Record]:
        """Line items of a ``*_line_items`` kind in a project, optionally narrowed by field values
        (``store.line_items("work_order_contract_line_items", pid, work_order_contract_id=cid)``)."""
        records = self.records(kind, project_id)
        return [record for record in records if all(record.get(key) == value for key, value in where.items())]

    # --- writing -----------------------------------------------------------------------------

    def insert(self, kind: str, scope_id: int, fields: Record) -> Record:
        now = iso_utc(self._clock())
        record_id: int | str = str(uuid.uuid4()) if kind in UUID_KINDS else self._next_id
        record = {**fields, "id": record_id, "created_at": now, "updated_at": now}
        if kind in PROJECT_KINDS:
            record["project_id"] = scope_id  # so a reader of all scopes at once can tell them apart
        if kind not in UUID_KINDS:
            self._next_id += 1
        self._collections[kind].add(scope_id, self.company_of(kind, scope_id), record)
        self._note(kind, scope_id, record, "create")
        return dict(record)

    def update(self, kind: str, scope_id: int, record_id: int, changes: Record) -> Record:
        """Apply ``changes``; like Rails, ``updated_at`` moves only if a value really changed."""
        collection = self._collections[kind]
        record = collection.records[scope_id][record_id]
        if any(record.get(field) != value for field, value in changes.items()):
            old_origin_id = record.get("origin_id")
            soft_deleted = record.get("deleted_at") is None and changes.get("deleted_at") is not None
            record.update(changes)
            record["updated_at"] = iso_utc(self._clock())
            collection.index_origin(self.company_of(kind, scope_id), old_origin_id, record)
            self._note(kind, scope_id, record, "delete" if soft_deleted else "update")
        return dict(record)

    def touch(self, kind: str, scope_id: int, record_id: int) -> Record:
        """Move ``updated_at`` to now without changing a value: a parent whose children changed."""
        record = self._collections[kind].records[scope_id][record_id]
        record["updated_at"] = iso_utc(self._clock())
        self._note(kind, scope_id, record, "update")
        return dict(record)

    def delete(self, kind: str, scope_id: int, record_id: int) -> None:
        """Remove a record for good (Procore's hard deletes); soft deletes are ``update``s."""
        collection = self._collections[kind]
        record = collection.records[scope_id].pop(record_id)
        del collection.scope_of[record_id]
        index = collection.by_origin.get(self.company_of(kind, scope_id), {})
        if record.get("origin_id") is not None and index.get(record["origin_id"]) == record_id:
            del index[record["origin_id"]]
        self._note(kind, scope_id, record, "delete")

    def insert_vendor(self, company_id: int, fields: Record) -> Record:
        return self.insert("vendors", company_id, fields)

    def update_vendor(self, company_id: int, vendor_id: int, changes: Record) -> Record:
        return self.update("vendors", company_id, vendor_id, changes)

    def reset(self) -> None:
        for collection in self._collections.values():
            collection.clear()
        self._next_id = FIRST_ID
        self._seed()
        self._changes.clear()

    # --- changes -------------------------------------------------------------------------------

    def on_commit(self, listener: Callable[[list[Change]], None]) -> None:
        """Call ``listener`` with each request's changes when it commits."""
        self._listeners.append(listener)

    def _note(self, kind: str, scope_id: int, record: Record, event: str) -> None:
        key = (kind, record["id"])
        earlier = self._changes.get(key)
        if earlier is not None:
            event = _FOLD.get((earlier.event, event), event)
        self._changes[key] = Change(kind, scope_id, self.company_of(kind, scope_id), record["id"], event)

    def _seed(self) -> None:
        for company_id in self._companies:
            if not self.standard_cost_code_lists(company_id):
                self.insert("standard_cost_code_lists", company_id, dict(STANDARD_COST_CODE_LIST))
            if not self.records("rp_groups", company_id):
                for name in PLANNING_GROUPS:
                    self.insert("rp_groups", company_id, {"name": name, "timezone": "America/Denver"})

    def commit(self) -> None:
        """Persist to ``data_file`` if there is one; call once after each writing request.

        Writing the whole file costs more as the company grows, so it is written at most once a
        second; ``flush`` (called when the server stops) writes what is left.
        """
        self._dirty = True
        changes, self._changes = list(self._changes.values()), {}
        for listener in self._listeners:
            listener(changes)
        if self._data_file is not None and time.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if self._data_file is not None and self._dirty:
            self._save(self._data_file)
            self._dirty, self._saved_at = False, time.monotonic()

    # --- the file ------------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = {"next_id": self._next_id}
        for kind, collection in self._collections.items():
            snapshot[kind] = {
                str(scope): list(records.values()) for scope, records in collection.records.items()
            }
        return snapshot

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as temp:
                json.dump(self._snapshot(), temp)
            os.replace(temp_name, path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise

    def _load(self, path: Path) -> None:
        data = json.loads(path.read_text(encoding="utf-8"))
        self._next_id = int(data["next_id"])
        # KINDS lists company kinds first, so every project is known before its records load.
        for kind in KINDS:
            for scope, records in data.get(kind, {}).items():
                for record in records:
                    self._collections[kind].add(int(scope), self.company_of(kind, int(scope)), record)
