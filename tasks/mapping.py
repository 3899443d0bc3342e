"""Map ERP rows to Procore payloads, one record at a time, never raising for a bad record.

Each row is validated against the entity's tolerant ERP model, handed to its pure mapping
function, and turned into a ``MappedRecord``: either a payload (with its content hash and any
warnings) or an error message that names the record, the field and the problem. Duplicate ERP
keys are an error for every row that shares the key: we cannot know which one is right; so are
shared natural keys, where Procore matches records by one (``tasks.keys``).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from procore_sync.errors import Blocked, InvalidRecord, MissingParent
from procore_sync.records import SourceRow
from tasks.actions import MappedRecord
from tasks.keys import natural_duplicates
from tasks.models import payload_of
from tasks.spec import EntitySpec, References


def payload_hash(payload: dict[str, Any]) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                           default=_hashed_number)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _hashed_number(value: object) -> object:
    """A ``Decimal`` is hashed as the float it used to be sent as, when that float is exact, so
    the records pushed before money became exact keep their hash and cost no call; the amounts
    a float could not carry hash differently and are sent once more, exactly."""
    if not isinstance(value, Decimal):
        raise TypeError(f"{type(value).__name__} is not JSON serializable")
    as_float = float(value)
    return as_float if Decimal(repr(as_float)) == value else str(value)


def describe_validation_error(exc: ValidationError) -> str:
    """Operator-readable: ``country_code: 'USA' is not ... ; name: ...``."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "record"
        value = error.get("input")
        shown = f" (got {value!r})" if isinstance(value, str | int | float) and value != "" else ""
        parts.append(f"{where}: {error['msg']}{shown}")
    return "; ".join(parts)


def map_rows(spec: EntitySpec, rows: Iterable[SourceRow], refs: References | None = None) -> list[MappedRecord]:
    by_key: dict[str, list[SourceRow]] = defaultdict(list)
    for index, row in enumerate(rows, start=1):
        by_key[_key_of(spec, row, index)].append(row)
    return natural_duplicates(spec, [
        _map_one(spec, key, group[0], refs) if len(group) == 1 else _duplicate(spec, key, group)
        for key, group in by_key.items()
    ])


def _key_of(spec: EntitySpec, row: SourceRow, index: int) -> str:
    raw = row.data.get(spec.key_field)
    key = str(raw).strip() if raw is not None else ""
    return key or f"(no {spec.key_field}, row {row.line or index})"


def _map_one(spec: EntitySpec, key: str, row: SourceRow, refs: References | None) -> MappedRecord:
    updated_at = row.data.get(spec.cursor_field)
    base: dict[str, Any] = {
        "key": key,
        "line": row.line,
        "source_updated_at": updated_at if isinstance(updated_at, datetime) else None,
    }
    # A file's rows are named by line, so the operator finds them in the file.
    where = f"line {row.line}: " if row.line is not None else ""
    if key.startswith("(no "):
        return MappedRecord(payload=None, error=f"{spec.key_field} is blank", **base)  # the key names the row
    if row.problem:
        return MappedRecord(payload=None, error=f"{where}{row.problem}", **base)
    try:
        source = spec.erp_model.model_validate(row.data)
        mapped = spec.map_record(source, refs)
    except ValidationError as exc:
        return MappedRecord(payload=None, error=where + describe_validation_error(exc), **base)
    except Blocked as exc:
        return MappedRecord(payload=None, blocked=exc.message, parent_failed=exc.parent_failed, **base)
    except InvalidRecord as exc:
        return MappedRecord(payload=None, error=where + exc.message, outside=isinstance(exc, MissingParent), **base)
    payload = payload_of(mapped.payload)
    if spec.uses_origin_id:
        payload["origin_id"] = spec.origin_id(key)
    # The scope is part of what was pushed: a record moved to another project is an update.
    digest = payload_hash({"payload": payload, "scope": mapped.scope})
    return MappedRecord(
        payload=payload, payload_hash=digest, warnings=mapped.warnings, scope=mapped.scope, **base
    )


def _duplicate(spec: EntitySpec, key: str, group: list[SourceRow]) -> MappedRecord:
    lines = [str(row.line) for row in group if row.line is not None]
    where = f"on lines {', '.join(lines)}" if lines else f"{len(group)} times"
    message = (
        f"duplicate {spec.key_field} {key}: the ERP has it {where}; "
        "make the key unique in the ERP, then resync"
    )
    # Outside each row: removing or re-keying the other one releases it, without this row changing.
    return MappedRecord(key=key, payload=None, error=message, line=group[0].line, outside=True)
