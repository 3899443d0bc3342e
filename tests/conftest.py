"""Shared fixtures: one real Prefect server per session, a real sandbox per test, a sample ERP.

Real parts only: a real Prefect server in a child process (on PostgreSQL, else SQLite),
the sandbox is the real FastAPI app on a real port, the ERP and the state are real DuckDB files,
and the state store's PostgreSQL backend runs on a throwaway cluster of the session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# The ephemeral/harness server needs more than the default 20 s on a busy 2-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
# The suite's server runs no schedules: every test starts the runs it reads. Its scheduler made
# each served deployment's next runs again whenever a test served them (two crons each), its
# late-runs and foreman services swept them: work for the two cores that no test looks at. Nor
# does any test read the task runs the task-run recorder writes from the clients' events (a
# subflow's parent task run, which the sync-all links test reads, is made through the API): it
# was a third of the server's CPU per sync-all (bench/orchestration.py).
for service in ("SCHEDULER", "LATE_RUNS", "FOREMAN", "TASK_RUN_RECORDER"):
    os.environ.setdefault(f"PREFECT_SERVER_SERVICES_{service}_ENABLED", "false")


def _one_ca_bundle() -> str:
    """A CA bundle holding certifi's first certificate alone (written once, shared by the workers).

    Every Prefect client builds an SSL context from ``PREFECT_API_SSL_CERT_FILE`` (certifi's ~140
    CAs by default), whether its API is https or not: 13 ms of CPU each, and Prefect makes a
    client per task run, per flow run, per poll of a test. That was 6.5 % of the suite's CPU
    (py-spy over ``make test``). The suite's Prefect servers are plain http on 127.0.0.1, so the
    bundle is never used to verify anything; one CA makes the context in 0.2 ms."""
    import re
    import tempfile

    import certifi

    first = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n",
                      Path(certifi.where()).read_text(), re.S)
    assert first is not None, "certifi's bundle holds no certificate"
    bundle = Path(tempfile.gettempdir()) / "procore-sync-tests-one-ca.pem"
    if not bundle.is_file() or bundle.read_text() != first.group(0):
        staged = bundle.with_name(f"{bundle.name}.{os.getpid()}")
        staged.write_text(first.group(0))
        staged.replace(bundle)  # whole, for a worker reading it at the same time
    return str(bundle)


# Inherited by the workers and every process the tests start.
os.environ.setdefault("PREFECT_API_SSL_CERT_FILE", _one_ca_bundle())

# The Procore client's unit tests share their fixtures (fake clock, client) from one module.
pytest_plugins = ["tests.client_support"]

from demo import sample_erp  # noqa: E402
from app import local_postgres  # noqa: E402
from app.local_postgres import LocalPostgres  # noqa: E402
from app.prefect_server import free_port, temporary_prefect_server  # noqa: E402
from procore_sync.settings import Settings  # noqa: E402
from sandbox.config import SandboxConfig  # noqa: E402
from sandbox.server import SandboxServer, start_in_thread  # noqa: E402


# Modules that take minutes (a chaos run, a company synced through sync-all, a demo served for the
# browser, deployments served by a process), longest first. They run first: under pytest-xdist
# (``--dist loadfile`` in pyproject.toml, in collection order) each starts at once on a worker of
# its own while the short modules fill in around them, instead of one of them starting last.
LONG_FIRST = ("test_chaos.py", "test_demo.py", "test_cluster.py", "test_all_entities.py",
              "test_reconcile_money.py", "test_alerts.py", "test_run_lock.py", "test_awaiting_quota.py",
              "test_webhooks_end_to_end.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONG_FIRST)))  # stable: the rest keep their order


# The run's one PostgreSQL cluster (its port), which the xdist controller starts for its workers.
SUITE_POSTGRES_PORT = "PROCORE_SYNC_TESTS_POSTGRES_PORT"
PREFECT_TEMPLATE = "prefect_template"  # Prefect's schema, migrated once for every worker's server


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the controller starts one PostgreSQL cluster for all its workers and
    migrates Prefect's schema there once, as a template: each worker's Prefect server then starts
    on a copy (``suite_postgres``). Per worker, a cluster for the Prefect server, another for the
    state stores and a migration of Prefect's 100-odd steps cost about 9 s of CPU."""
    workers = config.getoption("numprocesses", default=None)
    bin_dir = local_postgres.binaries()
    if hasattr(config, "workerinput") or not workers or bin_dir is None:
        return
    cluster = LocalPostgres(bin_dir, free_port()).start()
    config.add_cleanup(cluster.stop)
    migrate_prefect_database(cluster.create_database(PREFECT_TEMPLATE))
    os.environ[SUITE_POSTGRES_PORT] = str(cluster.port)  # inherited by the workers, started next


def migrate_prefect_database(database_url: str) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                   env=os.environ | {"PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url},
                   check=True, capture_output=True, timeout=300)


@dataclass(frozen=True)
class SuitePostgres:
    """This process's share of the run's PostgreSQL cluster: databases named for the worker."""

    cluster: LocalPostgres
    template: str | None  # a migrated Prefect database to copy, when the controller made one

    def prefect_database(self, kind: str = "prefect") -> str:
        """A database for a Prefect server of this worker's, a copy of the migrated template
        where there is one; its URL."""
        return self.cluster.create_database(_for_this_worker(kind), template=self.template)

    def state_database(self) -> str:
        """A database for this worker's state stores; its name."""
        name = _for_this_worker("state")
        self.cluster.create_database(name)
        return name


def _for_this_worker(kind: str) -> str:
    return f"{kind}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def suite_postgres() -> Iterator[SuitePostgres | None]:
    """The controller's cluster under pytest-xdist, else one of this session's own; None where
    PostgreSQL is not installed (``.ci/run`` installs it)."""
    bin_dir = local_postgres.binaries()
    if bin_dir is None:
        yield None
    elif port := os.environ.get(SUITE_POSTGRES_PORT):
        yield SuitePostgres(LocalPostgres(bin_dir, int(port)), PREFECT_TEMPLATE)
    else:
        with LocalPostgres(bin_dir, free_port()) as cluster:
            yield SuitePostgres(cluster, None)


@pytest.fixture(scope="session")
def prefect_api(suite_postgres: SuitePostgres | None) -> Iterator[str]:
    """A real Prefect server for the whole session (on PostgreSQL where it is installed, as
    ``.ci/run`` makes sure); yields its API URL, also set for child processes started by tests."""
    database_url = suite_postgres.prefect_database() if suite_postgres is not None else None
    with temporary_prefect_server(database_url) as url:
        yield url


class StatePostgres:
    """A database of the run's PostgreSQL cluster for state stores: a fresh schema per store."""

    def __init__(self, suite: SuitePostgres) -> None:
        self.cluster = suite.cluster
        self.name = suite.state_database()
        self._made = 0

    def url(self, schema: str | None = None) -> str:
        return self.cluster.url(self.name, schema=schema)

    def fresh_url(self) -> str:
        """The URL of a new, empty schema of the state database."""
        import psycopg

        self._made += 1
        schema = f"state_{os.getpid()}_{self._made}"
        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f"CREATE SCHEMA {schema}")
        return self.url(schema)


@pytest.fixture(scope="session")
def state_postgres(suite_postgres: SuitePostgres | None) -> StatePostgres:
    """The state store's PostgreSQL backend's database; skipped where PostgreSQL is not installed
    (``.ci/run`` installs it)."""
    if suite_postgres is None:
        pytest.skip("PostgreSQL is not installed: the state store's PostgreSQL backend is not tested")
    return StatePostgres(suite_postgres)


@dataclass(frozen=True)
class SampleErp:
    folder: Path
    expected: dict

    @property
    def path(self) -> Path:
        return self.folder / "erp.duckdb"


@pytest.fixture(scope="session")
def small_erp(tmp_path_factory: pytest.TempPathFactory) -> SampleErp:
    """100 suppliers with the known share of bad rows."""
    import json

    folder = tmp_path_factory.mktemp("erp")
    sample_erp.generate(folder, scale=0.2, seed=7)
    return SampleErp(folder, json.loads((folder / "expected.json").read_text()))


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with start_in_thread(SandboxConfig()) as server:
        yield server


def settings_env(monkeypatch: pytest.MonkeyPatch, sandbox_url: str, erp: Path, home: Path, **extra: str) -> Settings:
    """Point procore-sync at a sandbox, an ERP file and a fresh state folder, via the environment
    (as an operator would), so the real flows pick them up."""
    values = {
        "PROCORE_SYNC_LOCAL_SANDBOX_URL": sandbox_url,
        "PROCORE_SYNC_ERP_PATH": str(erp),
        "PROCORE_SYNC_HOME": str(home),
        "PROCORE_SYNC_QUOTA_ENABLED": "false",
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return Settings()
