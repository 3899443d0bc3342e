"""What Prefect's orchestration costs per sync-all: CPU by process, on the suite's kind of server.

```
.venv/bin/python bench/orchestration.py [--scale 0.05] [--runs 3] [--without TASK_RUN_RECORDER] [--json]
```

The sample company (seed 42) is synced ``--runs`` times by ``procore-sync sync all`` in a child
process, as an operator runs it, against a temporary Prefect server on a throwaway PostgreSQL
(``app/prefect_server.py``, the server every test worker and benchmark uses) and the sandbox in
this process. Per run, CPU seconds of: ``server`` (the Prefect server's process), ``postgres``
(its database's processes), ``sync`` (the CLI process, Prefect's import included) and ``sandbox``
(this process: the sandbox's threads). The first run creates every record; the next ones find
nothing to write, so what they cost is Prefect's and ours alone. ``--without`` turns a server
service off (``PREFECT_SERVER_SERVICES_<NAME>_ENABLED=false``), repeatable, to see its share.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _harness import bench_environment, company_parser, print_rows, sample_company
from app.cluster import process_tree

COLUMNS = ("run", "wall_s", "server_s", "postgres_s", "sync_s", "sandbox_s", "exit")
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """CPU seconds (user and system) of ``root`` and every live descendant, from /proc."""
    total = 0.0
    for pid in process_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def server_pids() -> tuple[int, int | None]:
    """The temporary Prefect server's process, and its PostgreSQL's postmaster (None on SQLite)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    server = SubprocessASGIServer._instances[None].server_process.pid
    url = get_current_settings().server.database.connection_url
    if url is None or not url.get_secret_value().startswith("postgresql"):
        return server, None
    import psycopg

    with psycopg.connect(url.get_secret_value().replace("+asyncpg", "")) as connection:
        [(folder,)] = connection.execute("SHOW data_directory").fetchall()
    return server, int((Path(folder) / "postmaster.pid").read_text().split()[0])


def one_run(label: str, server: int, postgres: int | None) -> dict:
    def parts() -> tuple[float, float, float, float]:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return (tree_cpu(server), tree_cpu(postgres) if postgres else 0.0,
                children.ru_utime + children.ru_stime, own.ru_utime + own.ru_stime)

    before, started = parts(), time.monotonic()
    done = subprocess.run([sys.executable, "-m", "app.cli", "sync", "all", "--json"], capture_output=True, check=False)
    wall = time.monotonic() - started
    time.sleep(2)  # what the server does after the run's last call: its events, flushed
    after = parts()
    server_s, postgres_s, sync_s, sandbox_s = (round(a - b, 1) for a, b in zip(after, before))
    return {"run": label, "wall_s": round(wall, 1), "server_s": server_s, "postgres_s": postgres_s,
            "sync_s": sync_s, "sandbox_s": sandbox_s, "exit": done.returncode}


def main() -> None:
    parser = company_parser(__doc__)
    parser.set_defaults(scale=0.05)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--without", action="append", default=[], metavar="SERVICE",
                        help="a Prefect server service to turn off, e.g. TASK_RUN_RECORDER (repeatable)")
    args = parser.parse_args()
    for service in args.without:
        os.environ[f"PREFECT_SERVER_SERVICES_{service.upper()}_ENABLED"] = "false"
    with sample_company(args.scale) as home, bench_environment(home / "erp" / "erp.duckdb", home / "state"):
        server, postgres = server_pids()
        rows = [one_run("first" if n == 0 else f"again-{n}", server, postgres) for n in range(args.runs)]
    if not args.json:
        print(f"sync-all at scale {args.scale:g}; server services off: {', '.join(args.without) or 'none'}")
    print_rows(rows, COLUMNS, args.json, width=10)


if __name__ == "__main__":
    main()
