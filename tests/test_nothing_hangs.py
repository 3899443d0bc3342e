"""Issue 13, point 3: nothing hangs. Every network wait has a limit, shown against a real server
that accepts and then never answers (or never finishes answering).

A wait without a limit cannot fail a test by itself, so each call runs in a helper thread that
the test gives a generous bound (``BOUND_S``): still waiting then means the wait has no limit.
The limits under test are set far below the bound; nothing here asserts how long a call took.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pytest
import requests

from connectors.drops import DropUnreachable, FolderDrop, SftpDrop
from connectors.duckdb_file import DuckDbFile
from connectors.erp import DuckDbErpSource, ErpFileBusy
from connectors.erp_api import ApiErpSource, ApiUnavailable
from connectors.erp_query import QueryErpSource
from connectors.sources import SourceSet, UploadSource
from connectors.state import StateStore
from procore_sync.errors import SyncError
from procore_sync.source_config import ApiSourceConfig, FolderDropConfig, QuerySourceConfig, SftpDropConfig
from tests.conftest import SampleErp, settings_env
from tests.sftp_server import sftp_server

BOUND_S = 30.0
T = TypeVar("T")


def within_bound(call: Callable[[], T]) -> T:
    """``call()``'s result or error; a failed test when it is still waiting after ``BOUND_S``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    thread.start()
    thread.join(BOUND_S)
    if thread.is_alive():
        pytest.fail(f"still waiting after {BOUND_S:g} s: this wait has no limit")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], stop: threading.Event) -> Iterator[int]:
    """A threaded HTTP server on a free local port; on the way out its stalled handlers are let go."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server(first_bytes: bytes = b"") -> Iterator[int]:
    """A TCP server on 127.0.0.1 that accepts, sends ``first_bytes`` and then nothing, ever."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            connection.sendall(first_bytes)
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        for connection in held:
            connection.close()


@contextmanager
def dripping_server() -> Iterator[int]:
    """An HTTP server that answers 200 and then sends its body one byte at a time, forever:
    each read gets something well within any read timeout, so only a limit on the whole answer
    ends the wait."""
    stop = threading.Event()

    class Drip(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
            self.wfile.write(b"[")
            while not stop.wait(0.02):  # the server's pace, not the test's
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return

        def log_message(self, *args: object) -> None:
            pass

    with serving(Drip, stop) as port:
        yield port


# --- SFTP -------------------------------------------------------------------------------------


def test_nothing_hangs_sftp_reads_and_writes(tmp_path: Path) -> None:
    with sftp_server(tmp_path / "sftp") as server:
        (server.root / "suppliers.csv").write_text("supplier_code,name\nS-1,Ace\n")
        (server.root / "suppliers.csv.done").write_text("")
        drop = SftpDrop(SftpDropConfig(**server.config(timeout_s=0.5)))
        try:
            assert drop.claim("suppliers", _now()), "connected, logged in, claimed"
            server.stall.set()  # the server keeps the session open and answers nothing more
            with pytest.raises(DropUnreachable, match="did not answer within 0.5 s") as read:
                within_bound(lambda: drop.fetch("suppliers", tmp_path / "local"))
            assert "sftp://erp-upload@127.0.0.1" in str(read.value)
            with pytest.raises(DropUnreachable, match="did not answer within 0.5 s"):
                within_bound(lambda: drop.release("suppliers"))  # a rename and a write
            server.stall.clear()
            assert within_bound(lambda: drop.release("suppliers")), "the next use opens a new session"
            assert (server.root / "suppliers.csv.done").is_file()
        finally:
            drop.close()
    # Silent after the SSH banner: the handshake has a limit too.
    with silent_server(b"SSH-2.0-OpenSSH_9.6\r\n") as port:
        (tmp_path / "known_hosts").write_text("")
        silent = SftpDrop(SftpDropConfig(kind="sftp", host="127.0.0.1", port=port, username="u", password="p",
                                         known_hosts=tmp_path / "known_hosts", timeout_s=0.5))
        with pytest.raises(DropUnreachable):
            within_bound(lambda: silent.ready("suppliers"))


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


# --- the API source ---------------------------------------------------------------------------


def test_nothing_hangs_api_source() -> None:
    def api(port: int) -> ApiErpSource:
        return ApiErpSource(ApiSourceConfig(kind="api", url=f"http://127.0.0.1:{port}", paths={"suppliers": "/s"},
                                            paging="none", timeout_s=0.5, max_attempts=1))

    with silent_server() as port:
        with pytest.raises(ApiUnavailable, match="did not answer"):
            within_bound(lambda: list(api(port).read("suppliers")))
    with dripping_server() as port:
        with pytest.raises(ApiUnavailable, match="did not finish its answer within 0.5 s"):
            within_bound(lambda: list(api(port).read("suppliers")))


# --- the ERP database -------------------------------------------------------------------------


def test_nothing_hangs_erp_database(tmp_path: Path) -> None:
    path = tmp_path / "erp.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE suppliers AS SELECT 'S-1' AS supplier_code")
    # A query that never ends (a runaway join; a table on a wedged mount) has a limit.
    runaway = QueryErpSource(QuerySourceConfig(
        kind="query", path=path, timeout_s=0.5,
        queries={"suppliers": "SELECT count(*) AS supplier_code FROM range(1000000000000) a, range(1000) b"}))
    with pytest.raises(SyncError, match=r"the query for suppliers ran longer than 0.5 s.*timeout_s"):
        within_bound(lambda: list(runaway.read("suppliers")))
    # Another thread of this process holds the file (sync-all's ERP sink, stuck): the turn has a
    # limit too, not only the turns of other processes.
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with DuckDbFile(path, what="the ERP database", busy=ErpFileBusy).connect(write=True):
            holding.set()
            release.wait()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(BOUND_S)
    try:
        with pytest.raises(ErpFileBusy, match="stayed locked"):
            within_bound(lambda: list(DuckDbErpSource(path, lock_timeout_s=0.5).read("suppliers")))
    finally:
        release.set()
        holder.join(BOUND_S)
    assert [row.data for row in DuckDbErpSource(path).read("suppliers")] == [{"supplier_code": "S-1"}]


# --- the quota --------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_api")
def test_nothing_hangs_quota_wait(sandbox: Any, small_erp: SampleErp, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.concurrency.sync import rate_limit

    from connectors.quota import QuotaUnavailable, ensure_quota_limit, quota_gate
    from flows.vendors import VENDORS
    from tasks.engine import default_runtime, run_entity
    from prefect import flow

    # One call per 75 minutes, and that one taken: the next wait would last past any run.
    name = f"quota-hangs-{tmp_path.name}"
    settings = settings_env(monkeypatch, sandbox.url, small_erp.path, tmp_path, PROCORE_SYNC_QUOTA_ENABLED="true",
                            PROCORE_SYNC_QUOTA_LIMIT_NAME=name, PROCORE_SYNC_QUOTA_PER_HOUR="1",
                            PROCORE_SYNC_QUOTA_SPIKE_PER_10S="1", PROCORE_SYNC_QUOTA_WAIT_LIMIT_S="1")
    ensure_quota_limit(settings)
    rate_limit(name, occupy=1, strict=True, timeout_seconds=BOUND_S)
    gate = quota_gate(settings)
    assert gate is not None
    with pytest.raises(QuotaUnavailable, match=f"no call of the shared quota budget '{name}' came free within 1 s"):
        within_bound(gate)

    # In a run started by hand (no worker would resume it) the wait fails the run, with the
    # message, instead of crashing it; a deployment's own run is deferred (AwaitingQuota).
    @flow(name="vendors-quota-wait")
    def vendors_quota_wait() -> Any:
        return run_entity(VENDORS, runtime=default_runtime(settings))

    state = within_bound(lambda: vendors_quota_wait(return_state=True))
    assert state.is_failed(), state
    [run] = StateStore(settings.state_path).runs("vendors", limit=5)
    assert run.status == "failed" and "came free within 1 s" in (run.message or "")


# --- the run as a whole -----------------------------------------------------------------------


@contextmanager
def procore_going_silent(sandbox_url: str, silent_on: str) -> Iterator[str]:
    """A proxy in front of the sandbox that forwards every request, except those whose path
    contains ``silent_on``: it takes them and never answers."""
    stop = threading.Event()

    class Proxy(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            if silent_on in self.path:
                stop.wait()
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            answer = requests.request(self.command, sandbox_url + self.path, headers=headers, data=body, timeout=30)
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    with serving(Proxy, stop) as port:
        yield f"http://127.0.0.1:{port}"


@pytest.mark.usefixtures("prefect_api")
def test_nothing_hangs_run_time_limit(sandbox: Any, small_erp: SampleErp, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.erp import DuckDbErpSource as Erp
    from tests.support import engine_runtime, run_vendors

    drop_folder = tmp_path / "drop"
    drop_folder.mkdir()
    (drop_folder / "suppliers.csv").write_text("supplier_code,name\nS-1,Ace Supply\n")
    (drop_folder / "suppliers.csv.done").write_text("")
    with procore_going_silent(sandbox.url, silent_on="/vendors") as procore:
        # Procore's own limit on a read lies beyond the bound: only the run's limit can end it.
        settings = settings_env(monkeypatch, procore, small_erp.path, tmp_path, PROCORE_SYNC_RUN_TIME_LIMIT_S="2",
                                PROCORE_SYNC_TIMEOUT_S=str(10 * BOUND_S))
        runtime = engine_runtime(settings)
        drop = FolderDrop(FolderDropConfig(kind="folder", folder=drop_folder))
        runtime.source = SourceSet(Erp(small_erp.path), {"suppliers": UploadSource(drop, settings.uploads_dir)})
        # In a helper thread, as sync-all runs its entities, where no alarm signal can interrupt
        # the wait (nor in a main thread whose SIGALRM is taken, as pytest-timeout takes it).
        state = within_bound(lambda: run_vendors(runtime, return_state=True))
    assert state.is_failed(), state
    message = str(state.message)
    assert "took longer than its limit of 2 s" in message and "PROCORE_SYNC_RUN_TIME_LIMIT_S" in message
    [run] = StateStore(settings.state_path).runs("vendors", limit=5)
    assert run.status == "failed" and "took longer than its limit of 2 s" in (run.message or "")
    # The claim went back: the upload waits, complete, for the next run; nothing is held.
    assert drop.ready("suppliers") and not drop.claimed("suppliers")
    assert not UploadSource(drop, settings.uploads_dir).in_use("suppliers")
