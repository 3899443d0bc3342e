"""What every benchmark shares: a temporary Prefect server, the real sandbox in a thread with
limits that never throttle, and the PROCORE_SYNC_ environment pointing at both."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from sandbox.config import SandboxConfig  # noqa: E402
from demo import sample_erp  # noqa: E402
from app.prefect_server import temporary_prefect_server  # noqa: E402
from sandbox.server import SandboxServer, start_in_thread  # noqa: E402

QUOTA_PER_HOUR = 3600  # Procore's default per company


@contextmanager
def bench_environment(erp_path: Path, home: Path, *, config: SandboxConfig | None = None,
                      **extra_env: str) -> Iterator[SandboxServer]:
    """Sandbox + Prefect; the shared rate limit is off (the bench measures calls, not pacing),
    and the sandbox never throttles, unless ``config`` says otherwise (bench/quota.py)."""
    config = config or SandboxConfig(spike_limit=1_000_000, hourly_limit=1_000_000)
    with start_in_thread(config) as sandbox:
        os.environ.update({
            "PROCORE_SYNC_ENVIRONMENT": "local",
            "PROCORE_SYNC_LOCAL_SANDBOX_URL": sandbox.url,
            "PROCORE_SYNC_CLIENT_ID": config.client_id,
            "PROCORE_SYNC_CLIENT_SECRET": config.client_secret,
            "PROCORE_SYNC_COMPANY_ID": str(config.company_id),
            "PROCORE_SYNC_ERP_PATH": str(erp_path),
            "PROCORE_SYNC_HOME": str(home),
            "PROCORE_SYNC_QUOTA_ENABLED": "false",
            **extra_env,
        })
        print("starting a temporary Prefect server...", file=sys.stderr, flush=True)
        with temporary_prefect_server():
            yield sandbox


def company_parser(doc: str) -> argparse.ArgumentParser:
    """The options of the benchmarks on the sample company: ``--scale`` and ``--json``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--json", action="store_true")
    return parser


@contextmanager
def sample_company(scale: float) -> Iterator[Path]:
    """A temporary folder with the sample ERP (seed 42) at ``scale`` in ``erp/``, gone after."""
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        sample_erp.generate(home / "erp", scale=scale, seed=42)
        yield home


def print_rows(rows: list[dict], columns: tuple[str, ...], as_json: bool, width: int = 16) -> None:
    """One JSON object a row, or a table of the columns."""
    if as_json:
        for row in rows:
            print(json.dumps(row))
        return
    print("  ".join(f"{c:>{width}}" for c in columns))
    for row in rows:
        print("  ".join(f"{row[c]!s:>{width}}" for c in columns))
