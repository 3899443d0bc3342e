"""What the ERP sink writes, whichever database holds it: tables described by pydantic models.

A ``SinkTable`` is one ERP table, its columns named and typed as its row model's fields (the
first one the key) plus ``synced_at``; a ``SinkDocument`` is a record and its lines. The types
are written once, in DuckDB's names (``COLUMN_TYPES``); the PostgreSQL backend says them in its
own (``connectors/erp_sink_postgres.py``). Numbers a column cannot hold are found here, before
any backend is asked to write them (``SinkTable.misfits``): both engines' ``DECIMAL(38, 18)``
hold 20 digits before the point and 18 after, and DuckDB would round extra decimals silently.

``SinkBackend`` is what each backend answers (``connectors/erp_sink_duckdb.py``, the ERP's
DuckDB file; ``connectors/erp_sink_postgres.py``, an ERP database on a PostgreSQL server);
``connectors/erp_sink.py`` chooses one and is what callers use.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from pydantic import BaseModel

from procore_sync.errors import TransientError

SYNCED_AT = "synced_at"
DELETED = "deleted"  # the column of header tables that marks a record deleted in Procore
# Every decimal column: (digits, of which after the point). No float type: money is never rounded.
ERP_DECIMAL = (38, 18)
DECIMAL_TYPE = f"DECIMAL({ERP_DECIMAL[0]},{ERP_DECIMAL[1]})"
# Python type of a model field → column type (DuckDB's names).
COLUMN_TYPES: dict[type, str] = {
    bool: "BOOLEAN",
    int: "BIGINT",
    Decimal: DECIMAL_TYPE,
    date: "DATE",
    datetime: "TIMESTAMPTZ",
    str: "VARCHAR",
}


class ErpSinkBusy(TransientError):
    hint = "another process is using the ERP database; the run retries by itself."


def _column_type(annotation: Any) -> str:
    """The column type of ``X`` or ``X | None``; checked against COLUMN_TYPES."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = options[0] if len(options) == 1 else annotation
    if annotation not in COLUMN_TYPES:  # exact: datetime is a date subclass
        raise TypeError(f"no ERP column type for {annotation!r}")
    return COLUMN_TYPES[annotation]


@dataclass(frozen=True)
class SinkTable:
    """One ERP table, described by the model of its rows; the model's first field is the key.

    ``parent`` names the column that holds the document's key, for tables of lines.
    """

    name: str
    model: type[BaseModel]
    parent: str | None = None

    @property
    def key(self) -> str:
        return next(iter(self.model.model_fields))

    @property
    def columns(self) -> list[tuple[str, str]]:
        declared = [(name, _column_type(info.annotation)) for name, info in self.model.model_fields.items()]
        return [*declared, (SYNCED_AT, "TIMESTAMPTZ")]

    def type_of(self, column: str) -> str:
        return dict(self.columns)[column]

    def narrowed(self, found: dict[str, str], wide: str) -> list[str]:
        """The decimal columns that ``found`` (each existing column's type, as the database names
        it) holds in another type than ``wide``: those an earlier version or an ERP team made
        narrower, which both backends widen."""
        return [name for name, kind in self.columns if kind == DECIMAL_TYPE and found.get(name) not in (None, wide)]

    def values(self, rows: Sequence[BaseModel], now: datetime) -> list[list[Any]]:
        """The rows as one list per column (``synced_at`` is ``now``), as both backends insert them."""
        dumped = [row.model_dump() for row in rows]
        return [[row.get(name) for row in dumped] if name != SYNCED_AT else [now] * len(dumped)
                for name, _ in self.columns]

    def misfits(self, row: BaseModel) -> list[str]:
        """What in ``row`` its columns cannot hold, each naming the row, the field and the value."""
        where = f"{self.name} {getattr(row, self.key)}"
        return [f"{where}: {name} {value} {problem}" for name, value in row
                if isinstance(value, Decimal) and (problem := _decimal_misfit(value))]


def _decimal_misfit(value: Decimal) -> str | None:
    digits, scale = ERP_DECIMAL
    sign, figures, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int), "Procore's numbers are finite (flows.change_orders.exact)"
    after = max(-exponent, 0)
    before = max(len(figures) + exponent, 0) if value else 0
    if before > digits - scale:
        return f"has {before} digits before the point, more than the {digits - scale} the ERP's {DECIMAL_TYPE} holds"
    if after > scale:
        return f"has {after} decimals, more than the {scale} the ERP's {DECIMAL_TYPE} holds"
    return None


@dataclass(frozen=True)
class SinkDocument:
    """A record and its lines (``header`` is a row of the header table)."""

    header: BaseModel
    lines: list[BaseModel] = field(default_factory=list)

    def misfits(self, header: SinkTable, lines: SinkTable | None) -> list[str]:
        """The numbers of the document the ERP's columns cannot hold (none: it may be written):
        its lines', else its header's (a header's total of misfit lines says nothing more)."""
        found = [m for line in self.lines for m in lines.misfits(line)] if lines else []
        return found or header.misfits(self.header)


class SinkBackend(Protocol):
    """Where the sink's tables are. Each write is one transaction that leaves the tables' CSV
    exports rewritten from what it committed, in the order the writes committed."""

    @property
    def location(self) -> str: ...

    def write(self, header: SinkTable, lines: SinkTable | None, documents: Sequence[SinkDocument],
              now: datetime) -> None: ...

    def mark_deleted(self, header: SinkTable, keys: Sequence[int], now: datetime) -> None: ...

    def rows(self, table: SinkTable) -> list[dict[str, Any]]: ...

    def existing(self, tables: Sequence[SinkTable]) -> list[str]: ...
