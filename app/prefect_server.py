"""Local Prefect servers: the demo's (API and UI on 127.0.0.1, started or reused), and a
temporary one for the test suite and the benchmarks."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType

import requests

from app import local_postgres
from procore_sync.errors import SyncError

STARTUP_TIMEOUT_S = 120.0
LOG_TAIL_LINES = 5  # of the server's log, in the error of a server that did not start


class PrefectServerNotStarted(SyncError):
    """The local Prefect server exited, or did not answer, while starting."""

    hint = ("the server's last words are above, its whole log where named: most often a database it "
            "cannot reach (PREFECT_SERVER_DATABASE_CONNECTION_URL) or a machine too busy to start it "
            "in time; fix that and run again.")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_healthy(api_url: str) -> bool:
    try:
        return requests.get(f"{api_url}/health", timeout=2).ok
    except requests.RequestException:
        return False


def die_with_parent() -> None:
    """In a child's process, before it starts (``preexec_fn``): Linux sends it SIGTERM when the
    process that started it ends, however that ends (SIGTERM or SIGKILL run none of the demo's
    cleanup), so a child in a session of its own (a server, a serve loop, a cluster's host) never
    outlives its demo. Elsewhere, nothing."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


class PrefectServer:
    """``prefect server start`` in a child process with its own PREFECT_HOME.

    A server already answering on the port (an earlier demo left running) is reused, not
    restarted; only a server this object started is stopped on exit.
    """

    def __init__(self, home: Path, port: int = 4200, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None) -> None:
        self.home, self.port, self.host = home, port, host
        self.env = env or {}  # over this process's environment: the database, the services
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"

    def start(self) -> "PrefectServer":
        if is_healthy(self.api_url):
            return self
        if not port_is_free(self.port, self.host):
            self.port = free_port(self.host)
        self.home.mkdir(parents=True, exist_ok=True)
        env = os.environ | {
            "PREFECT_HOME": str(self.home.resolve()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": self.api_url,
        } | self.env
        env.pop("PREFECT_API_URL", None)
        log = (self.home / "server.log").open("ab")
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", self.host, "--port", str(self.port)]
        # A session of its own: Ctrl-C in the terminal reaches the demo, which stops what uses the
        # server (the serve loop, the quota slots it lends) before the server; otherwise the
        # server is the first to go, and the rest retries against it.
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True, preexec_fn=die_with_parent)
        if (failure := self._wait_until_healthy()) is not None:
            self.kill()
            raise PrefectServerNotStarted(f"{failure}; its log {self.home / 'server.log'} ends:\n{self._log_tail()}")
        return self

    def _wait_until_healthy(self) -> str | None:
        """None once the server answers; else what went wrong."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                return f"the Prefect server exited while starting (status {self.process.returncode})"
            if is_healthy(self.api_url):
                return None
            time.sleep(0.5)
        return f"the Prefect server did not answer on {self.api_url} within {STARTUP_TIMEOUT_S:.0f} s"

    def _log_tail(self) -> str:
        lines = (self.home / "server.log").read_text(errors="replace").splitlines()
        return "\n".join([line for line in lines if line.strip()][-LOG_TAIL_LINES:])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def kill(self) -> None:
        """Stop the server this object started at once, without waiting for its shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> "PrefectServer":
        return self.start()

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.stop()


@contextmanager
def temporary_prefect_server(database_url: str | None = None) -> Iterator[str]:
    """A Prefect server for this process and the processes it starts, gone at the end; yields
    its API URL (also set as ``PREFECT_API_URL`` in the environment, for child processes).

    Its data goes to ``database_url`` (a PostgreSQL database, empty or migrated already), else to
    a throwaway PostgreSQL of its own where one is installed, as Prefect is run at scale: on
    SQLite (Prefect's test harness, the fallback) concurrent flow runs are refused and wait
    seconds each (``app/local_postgres.py``)."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    bin_dir = local_postgres.binaries()
    with ExitStack() as stack:
        if database_url is None and bin_dir is not None:
            postgres = stack.enter_context(local_postgres.LocalPostgres(bin_dir, free_port()))
            database_url = postgres.create_database("prefect")
        if database_url is None:
            stack.enter_context(prefect_test_harness(server_startup_timeout=180))
        else:
            stack.enter_context(_harness_on(database_url))
        url = PREFECT_API_URL.value()
        before = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = url
        try:
            yield url
        finally:  # no child process started later is sent to a server that is gone
            if before is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = before


@contextmanager
def _harness_on(database_url: str) -> Iterator[None]:
    """Prefect's test harness (``prefect.testing.utilities.prefect_test_harness``: a server in a
    child process, this process's settings pointed at it) with its database at ``database_url``."""
    import prefect.context
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    with temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: database_url}):
        server = SubprocessASGIServer(port=free_port())
        SubprocessASGIServer._instances[None] = server  # flows find it, as under the harness
        server.start(timeout=180)
        try:
            with temporary_settings(updates={PREFECT_API_URL: server.api_url}), \
                    prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()):
                yield
                APILogWorker.drain_all(timeout=10)
        finally:
            server.stop()
            SubprocessASGIServer._instances.pop(None, None)
