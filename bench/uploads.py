"""Benchmark: what a template upload costs, from a folder drop into Resource Planning people.

Generates the sample ERP at a scale (1 = about 130 people in Resource Planning), drops its
``resource_people.csv`` into a folder drop in replace mode, and prints per step the records
written, Procore calls, the share of an hour of Procore's default quota (3,600 calls), and time:

- ``first``: the first upload (every person created);
- ``same``: the same file uploaded again (nothing to write);
- ``one_gone``: the file without one person (one deactivation);
- ``tenth_edited``: a tenth of the people with a new phone number.

    .venv/bin/python bench/uploads.py [--scale 1] [--json]
"""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

from _harness import QUOTA_PER_HOUR, bench_environment, company_parser, print_rows, sample_company

from app.runner import run_entities
from procore_sync.settings import Settings

TABLE = "resource_people"
COLUMNS = ("step", "rows", "created", "updated", "unchanged", "failed", "api_calls", "quota_share_pct", "duration_s")


def drop(folder: Path, header: list[str], rows: list[list[str]]) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([header, *rows])
    (folder / f"{TABLE}.csv").write_text(out.getvalue(), encoding="utf-8")
    (folder / f"{TABLE}.csv.done").write_text("")


def main() -> None:
    args = company_parser(__doc__).parse_args()
    with sample_company(args.scale) as root:
        with (root / "erp" / "templates" / f"{TABLE}.csv").open(newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        folder = root / "drop"
        folder.mkdir()
        sources = json.dumps({TABLE: {"kind": "folder", "folder": str(folder)}})
        phone = header.index("phone")
        edited = [row[:phone] + [f"(303) 555-01{n % 100:02d}"] + row[phone + 1:] if n % 10 == 0 else row
                  for n, row in enumerate(rows)]
        steps = {"first": rows, "same": rows, "one_gone": rows[1:], "tenth_edited": edited[1:]}
        with bench_environment(root / "erp" / "erp.duckdb", root / "home", PROCORE_SYNC_SOURCES=sources):
            results = []
            for step, content in steps.items():
                drop(folder, header, content)
                started = time.perf_counter()
                [summary] = run_entities(Settings(), [TABLE])
                results.append({
                    "step": step, "rows": len(content), "created": summary.created, "updated": summary.updated,
                    "unchanged": summary.unchanged, "failed": summary.failed, "api_calls": summary.api_calls,
                    "quota_share_pct": round(100 * summary.api_calls / QUOTA_PER_HOUR, 1),
                    "duration_s": round(time.perf_counter() - started, 2),
                })
    print_rows(results, COLUMNS, args.json, width=15)


if __name__ == "__main__":
    main()
