"""Benchmark: the cost of syncing N new ERP suppliers to Procore vendors, in calls and in time.

It generates a sample ERP with N suppliers (seed 42, with the sample's usual share of bad rows),
starts the real sandbox in a thread (limits raised so it never throttles), and runs the real
``sync_vendors`` flow twice under a temporary Prefect server: the first sync (all creates) and a
second one with nothing changed. It prints, never asserts: records, created, failed, write and
total API calls, the fewest write calls the batch endpoint allows, durations, peak RSS, and what
those calls cost against Procore's quota of 3,600 calls per hour.

    .venv/bin/python bench/vendors_bulk.py [--suppliers 10000] [--batch-size 1000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import QUOTA_PER_HOUR, bench_environment

from flows.entities import sync_vendors
from demo import sample_erp
from tasks.spec import SyncOptions

MAX_BATCH = 1000  # records per PATCH /vendors/sync


def measure(run: str, options: SyncOptions, bad_rows: int) -> dict[str, Any]:
    started = time.monotonic()
    summary = sync_vendors(options)
    wall_s = time.monotonic() - started
    writes_needed = summary.created + summary.updated
    records = writes_needed + summary.unchanged + summary.failed
    return {
        "run": run,
        "records": records,
        "created": summary.created,
        "updated": summary.updated,
        "unchanged": summary.unchanged,
        "failed": summary.failed,
        "expected_bad": bad_rows,
        "write_calls": summary.write_calls,
        "api_calls": summary.api_calls,
        "min_write_calls": math.ceil(writes_needed / MAX_BATCH),
        "writes_per_1000": round(summary.write_calls * 1000 / records, 2) if records else 0.0,
        "engine_s": summary.duration_s,
        "wall_s": round(wall_s, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "status": summary.status,
    }


def print_table(results: list[dict[str, Any]], suppliers: int) -> None:
    columns = ("run", "records", "created", "failed", "write_calls", "api_calls", "min_write_calls",
               "writes_per_1000", "engine_s", "wall_s", "peak_rss_mib")
    widths = [max(len(c), *(len(str(r[c])) for r in results)) for c in columns]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for r in results:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(columns, widths)))
    print("records: supplier codes read and planned (a duplicated code counts once); the second run reads "
          "only rows changed since the first run's cursor. engine_s: RunSummary.duration_s; wall_s: the flow "
          "call; peak_rss_mib: this whole process (sandbox thread included).")
    first = results[0]
    share = 100 * first["write_calls"] / QUOTA_PER_HOUR
    print(f"\nquota: at {QUOTA_PER_HOUR:,} calls/h, the first sync's {first['write_calls']} write calls take "
          f"{share:.2f}% of one hour's budget ({first['api_calls']} API calls in all: "
          f"{100 * first['api_calls'] / QUOTA_PER_HOUR:.2f}%), versus {suppliers:,} calls one by one "
          f"(~{suppliers / QUOTA_PER_HOUR:.1f} h of the whole budget).")
    target = math.ceil(suppliers / MAX_BATCH) + 1
    met = "met" if first["write_calls"] <= target else "not met"
    print(f"target: at most {target} write calls for {suppliers:,} new vendors: {met}")
    print(f"failed = bad rows: {first['failed']} failed, the sample ERP has {first['expected_bad']} bad keys")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suppliers", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=MAX_BATCH)
    parser.add_argument("--json", action="store_true", help="one JSON object per run")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="procore-sync-bench-") as tmp:
        folder = Path(tmp)
        sample = sample_erp.generate(folder / "erp", scale=args.suppliers / 500, seed=42)
        expected = json.loads((folder / "erp" / sample_erp.EXPECTED_FILE).read_text())
        bad_rows = len(expected["suppliers"]["bad"])
        if not args.json:
            print(f"sample ERP: {sample}")
            print("note: the shared Prefect rate limit (PROCORE_SYNC_QUOTA_ENABLED) is off here: the bench "
                  "measures the engine, and the sandbox is set not to throttle. The real quota is "
                  "Procore's 3,600 calls/h per company.")
        erp = folder / "erp" / sample_erp.DUCKDB_FILE
        with bench_environment(erp, folder / "home", PROCORE_SYNC_BATCH_SIZE=str(args.batch_size)):
            options = SyncOptions(batch_size=args.batch_size)
            results = [measure("first", options, bad_rows), measure("second", options, bad_rows)]

    if args.json:
        for result in results:
            print(json.dumps(result))
    else:
        print()
        print_table(results, args.suppliers)


if __name__ == "__main__":
    main()
