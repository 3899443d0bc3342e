"""The sandbox's data: vendors per company, in memory, optionally mirrored to a JSON file.

The store knows nothing about HTTP or validation; it hands out ids, stamps ``created_at`` and
``updated_at`` from the injected clock and keeps records as plain dicts. Callers change records
through ``insert_vendor`` / ``update_vendor`` and then call ``commit`` once per request, which
writes the whole store to ``data_file`` (temp file + ``os.replace``, so a crash never leaves half
a file). A sync of 1,000 items is thus one file write, not 1,000.

Ids start above 2**49, as ids in Procore's newer regions do, so a client that squeezes ids into
32 bits fails here rather than in production.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIRST_ID = 562_949_953_421_313


def iso_utc(unix_seconds: float) -> str:
    """Procore's timestamp form: ISO 8601, UTC, whole seconds, ``Z``."""
    return datetime.fromtimestamp(unix_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Store:
    def __init__(self, clock: Callable[[], float], data_file: Path | None = None) -> None:
        self._clock = clock
        self._data_file = data_file
        self._vendors: dict[int, dict[int, dict[str, Any]]] = {}
        # origin_id -> vendor id per company; syncs look items up by origin_id, so keep it O(1).
        self._by_origin: dict[int, dict[str, int]] = {}
        self._next_id = FIRST_ID
        if data_file is not None and data_file.exists():
            self._load(data_file)

    # --- reading -----------------------------------------------------------------------------

    def vendors(self, company_id: int) -> list[dict[str, Any]]:
        """Copies of the company's vendors, sorted by id."""
        records = self._vendors.get(company_id, {})
        return [dict(records[vendor_id]) for vendor_id in sorted(records)]

    def vendor(self, company_id: int, vendor_id: int) -> dict[str, Any] | None:
        record = self._vendors.get(company_id, {}).get(vendor_id)
        return dict(record) if record is not None else None

    def vendor_by_origin_id(self, company_id: int, origin_id: str) -> dict[str, Any] | None:
        vendor_id = self._by_origin.get(company_id, {}).get(origin_id)
        return self.vendor(company_id, vendor_id) if vendor_id is not None else None

    # --- writing -----------------------------------------------------------------------------

    def insert_vendor(self, company_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        now = iso_utc(self._clock())
        record = {"id": self._next_id, **fields, "created_at": now, "updated_at": now}
        self._next_id += 1
        self._vendors.setdefault(company_id, {})[record["id"]] = record
        self._index_origin(company_id, None, record)
        return dict(record)

    def update_vendor(self, company_id: int, vendor_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes``; like Rails, ``updated_at`` moves only if a value really changed."""
        record = self._vendors[company_id][vendor_id]
        if any(record.get(field) != value for field, value in changes.items()):
            old_origin_id = record.get("origin_id")
            record.update(changes)
            record["updated_at"] = iso_utc(self._clock())
            self._index_origin(company_id, old_origin_id, record)
        return dict(record)

    def reset(self) -> None:
        self._vendors.clear()
        self._by_origin.clear()
        self._next_id = FIRST_ID

    def _index_origin(self, company_id: int, old_origin_id: str | None, record: dict[str, Any]) -> None:
        index = self._by_origin.setdefault(company_id, {})
        if old_origin_id is not None:
            index.pop(old_origin_id, None)
        if record.get("origin_id") is not None:
            index[record["origin_id"]] = record["id"]

    def commit(self) -> None:
        """Persist to ``data_file`` if there is one; call once after each writing request."""
        if self._data_file is not None:
            self._save(self._data_file)

    # --- the file ------------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        return {
            "next_id": self._next_id,
            "vendors": {str(company): list(records.values()) for company, records in self._vendors.items()},
        }

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
        for company, records in data["vendors"].items():
            self._vendors[int(company)] = {int(record["id"]): record for record in records}
            for record in records:
                self._index_origin(int(company), None, record)
