"""A seeded sample ERP: a realistic construction company's data with a known share of bad rows.

``generate`` writes three things into one folder:

- ``erp.duckdb``: one table per ERP entity (suppliers, customers, employees, projects, cost
  codes and types, sub jobs, WBS codes, budget lines, prime contracts, subcontracts, purchase
  orders, direct costs and their lines), what ``connectors.erp.DuckDbErpSource`` reads;
- ``templates/<table>.csv``: the same rows as CSV templates, what ``CsvErpSource`` reads;
- ``expected.json``: per table, the keys that must fail (``bad``, with field and problem), the
  keys that must wait for a bad parent (``blocked``, naming it), the keys that must sync with a
  warning, and the keys with odd but valid Unicode, so tests can check that exactly those records
  fail or wait and everything else lands.

Each table is one generator in ``GENERATORS``, run in dependency order with its own random
stream (derived from the seed and the table name), so adding a table never changes the rows of
the tables before it. Rows are built good first; then disjoint, randomly chosen rows get exactly
one defect each; then rows with a bad or blocked parent are recorded as blocked. The same seed
and ``now`` give the same rows, CSV files and expected.json; ``updated_at`` values spread over the
90 days before ``now``. Names come from word lists, e-mail and web addresses use the reserved
``.example`` domain, and phone numbers the fictional 555-01xx range.

``mutate``/``mutate_table`` edit a few good rows (for a second sync to pick up) and ``fix`` turns
one bad row good (releasing the rows it blocked). ``docs/erp-templates.md`` describes the tables.
"""

from __future__ import annotations

from demo.sample_erp.base import DESCRIPTION_LIMIT, HISTORY_DAYS, Column, Company, TableData
from demo.sample_erp.changes import MUTATIONS, mutate, mutate_table
from demo.sample_erp.files import (
    DUCKDB_FILE,
    EXPECTED_FILE,
    GENERATORS,
    TEMPLATES_DIR,
    Generator,
    SampleSummary,
    csv_value,
    export_templates,
    generate,
    generated_columns,
)
from demo.sample_erp.fixes import Fix, fix
from demo.sample_erp.suppliers import NAME_LIMIT, NOTES_LIMIT, UNICODE_KINDS

__all__ = [
    "DESCRIPTION_LIMIT", "DUCKDB_FILE", "EXPECTED_FILE", "GENERATORS", "HISTORY_DAYS", "MUTATIONS",
    "NAME_LIMIT", "NOTES_LIMIT", "TEMPLATES_DIR", "UNICODE_KINDS", "Column", "Company", "Fix",
    "Generator", "SampleSummary", "TableData", "csv_value", "export_templates", "fix", "generate", "generated_columns",
    "mutate", "mutate_table",
]
