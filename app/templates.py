"""Empty CSV templates, one per ERP → Procore entity: the header line of the template's
columns, key first and ``updated_at`` last, as ``docs/erp-templates.md`` describes them (type,
required or not, example) and as the sample ERP writes them.

The columns are the entity's ERP model, declared once (``flows.registry.template_columns``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from flows import ENTITY_FLOWS
from flows.registry import template_columns
from procore_sync.errors import ConfigError


def write_templates(out: Path, entities: Iterable[str] | None = None) -> list[Path]:
    """``<out>/<table>.csv`` with the header line only; ``entities`` by entity or table name."""
    columns = template_columns()
    tables = {name: spec.erp_table for name, (spec, _) in ENTITY_FLOWS.items() if spec.erp_table in columns}
    chosen = list(columns) if entities is None else [tables.get(name, name) for name in entities]
    unknown = [table for table in chosen if table not in columns]
    if unknown:
        raise ConfigError(f"no template for {', '.join(unknown)}; templates: {', '.join(columns)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for table in chosen:
        path = out / f"{table}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(columns[table])
        written.append(path)
    return written
