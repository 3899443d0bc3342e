"""Benchmark: write calls per record for every entity, against the fewest the endpoints allow.

Generates the sample ERP at a scale (1 = about 20 projects, 500 suppliers, 2,000 budget lines,
100 subcontracts and 100 purchase orders of ~10 lines, 1,000 direct costs), runs sync-all once
into the sandbox, and prints per entity: records, created, failed, blocked, write calls, the
fewest write calls the batch endpoints allow (one batch of up to 1,000 per company, project or
contract; one call per record where Procore has no batch create), and total API calls.

    .venv/bin/python bench/entities.py [--scale 1] [--json]
"""

from __future__ import annotations

import time

from _harness import QUOTA_PER_HOUR, bench_environment, company_parser, print_rows, sample_company

from flows.sync_all import sync_all
from tasks.spec import SyncOptions

COLUMNS = ("entity", "records", "created", "failed", "blocked", "write_calls", "min_write_calls",
           "writes_per_record", "api_calls", "duration_s")


def row(summary) -> dict:  # noqa: ANN001 - a RunSummary
    records = summary.created + summary.updated + summary.unchanged + summary.failed + summary.blocked
    return {
        "entity": summary.entity,
        "records": records,
        "created": summary.created,
        "failed": summary.failed,
        "blocked": summary.blocked,
        "write_calls": summary.write_calls,
        "min_write_calls": summary.min_write_calls,
        "writes_per_record": round(summary.write_calls / records, 4) if records else 0.0,
        "api_calls": summary.api_calls,
        "duration_s": summary.duration_s,
    }


def main() -> None:
    args = company_parser(__doc__).parse_args()
    with sample_company(args.scale) as home, bench_environment(home / "erp" / "erp.duckdb", home / "state"):
        started = time.monotonic()
        rows = [row(s) for s in sync_all(options=SyncOptions())]
        wall_s = time.monotonic() - started
    print_rows(rows, COLUMNS, args.json)
    if args.json:
        return
    total = sum(r["api_calls"] for r in rows)
    writes = sum(r["write_calls"] for r in rows)
    fewest = sum(r["min_write_calls"] for r in rows)
    print(f"\nscale {args.scale}: {writes} write calls (fewest the endpoints allow: {fewest}), {total} API calls "
          f"in all = {100 * total / QUOTA_PER_HOUR:.1f}% of one hour's quota at {QUOTA_PER_HOUR}/h; "
          f"sync-all took {wall_s:.1f} s")


if __name__ == "__main__":
    main()
