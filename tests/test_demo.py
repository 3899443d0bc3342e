"""The demo as an operator meets it: ``procore-sync demo`` in a subprocess (sample ERP → local
sandbox through a local Prefect server with its UI, then serving the deployments), in its own
process group as a terminal runs it:

- the Prefect UI as the operator's sync report, in headless Chromium (Debian's, never a
  download): the sync-all run, a known bad record's message in its entity's failed-records
  table, and a full resync started from a deployment's run form, which completes. Screenshots go
  to a temporary folder, or to ``$SCREENSHOTS_DIR``: ``make screenshots`` refreshes the ones in
  docs/screenshots/ that the README shows;
- then Ctrl-C, once it serves every deployment and a served run is in flight: everything the
  demo started (the serve loop and its run, the Procore sandbox, the Prefect server) exits,
  quietly, within seconds. One demo serves both (starting one takes a minute of the suite's
  two cores).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from app import local_postgres
from app.prefect_server import free_port

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
# "It stops": a bound on the wait, reached only when something is left running. The demo gives its
# quota slots back a spike window (10 s) after their last call before it stops its servers: 9 s
# from Ctrl-C to the last process, measured alone, more than 15 s beside the suite, and more than
# 40 s once beside the suite on four workers (two cores): a hang never ends, a loaded stop does.
STOP_BOUND_S = 90.0
IN_FLIGHT_WAIT_S = 60.0  # how long a run started by hand takes to be in flight, at most
# The demo's two sync-alls and its field activity, before it serves: 60-120 s beside the suite.
START_BOUND_S = 300.0
# Each test's bound, its fixture's start in it: above START_BOUND_S, so that a demo that does not
# get to serving fails with its log and its threads' stacks, not with pytest-timeout's dump of
# the test's own threads.
pytestmark = pytest.mark.timeout(START_BOUND_S + 300)


def family(pid: int) -> set[int]:
    """``pid``, its descendants and its process group's members, from /proc."""
    parents: dict[int, int] = {}
    group: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(stat[1])
            if int(stat[2]) == pid:
                group.add(int(entry.name))
    found = {pid} | group
    while more := {child for child, parent in parents.items() if parent in found} - found:
        found |= more
    return found


def _stat(pid: int) -> list[str] | None:
    """State, parent, process group of ``pid`` (None once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()[:3]


def running(pids: set[int]) -> set[int]:
    """Those still running: a zombie has exited (only its parent's wait is missing)."""
    return {pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] != "Z"}


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "(gone)"


def described(pids: set[int]) -> list[str]:
    """Each process's id and command line, for a failure's message."""
    return [f"{pid}: {_command(pid)[:200]}" for pid in sorted(pids)]


def wait_until(condition: Callable[[], bool], bound_s: float) -> bool:
    """Whether ``condition`` held within ``bound_s``, polled."""
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@dataclass
class Demo:
    process: subprocess.Popen
    ui: str
    home: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def served_demo(home: Path) -> Iterator[Demo]:
    """``procore-sync demo`` on a small company, left serving.

    Its Prefect server keeps its database on a throwaway PostgreSQL where one is installed, as
    an operator may choose with ``PREFECT_SERVER_DATABASE_CONNECTION_URL``: on SQLite the demo's
    two sync-alls wait on the database's one writer (`demo --once` at this scale, measured: 100 s
    on SQLite, 32 s on PostgreSQL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_SYNC_", "PREFECT_"))}
    env["PROCORE_SYNC_HOME"] = str(home)
    with ExitStack() as stack:
        if (bin_dir := local_postgres.binaries()) is not None:
            postgres = stack.enter_context(local_postgres.LocalPostgres(bin_dir, free_port()))
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = postgres.create_database("demo")
        yield from _served(home, free_port(), env)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with served_demo(tmp_path_factory.mktemp("demo")) as running_demo:
        yield running_demo


def _served(home: Path, port: int, env: dict[str, str]) -> Generator[Demo, None, None]:
    log = home / "demo.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "demo", "--scale", "0.05", "--prefect-port", str(port),
             "--sandbox-port", str(free_port())],
            env=env, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
    running_demo = Demo(process, f"http://127.0.0.1:{port}", home, log)
    started: set[int] = {process.pid}
    try:
        def serving() -> bool:
            return "Serving the deployments" in running_demo.log_text()

        wait_until(lambda: serving() or process.poll() is not None, START_BOUND_S)
        if not serving():
            pytest.fail(f"the demo did not get to serving (bound: {START_BOUND_S:g} s): {where_it_is(running_demo)}")
        yield running_demo
    finally:  # whatever is left running
        for pid in running(started | family(process.pid)):
            os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


def where_it_is(demo: Demo) -> str:
    """How the demo ended and the end of its log; or, while it runs, its log with every thread's
    stack (``SIGUSR1``)."""
    if (status := demo.process.poll()) is not None:
        return f"it ended (status {status}); its log ends: {demo.log_text()[-8000:]}"
    os.kill(demo.process.pid, signal.SIGUSR1)
    wait_until(lambda: "most recent call first" in demo.log_text(), 10)
    return f"it runs on; its log, every thread's stack last: {demo.log_text()[-8000:]}"


def api(ui: str, path: str, body: dict | None = None) -> object:
    answer = requests.post(f"{ui}/api{path}", json=body, timeout=30) if body is not None else \
        requests.get(f"{ui}/api{path}", timeout=30)
    answer.raise_for_status()
    return answer.json()


def served(ui: str, name: str, timeout_s: float = 90) -> dict:
    """The deployment, once the demo's serve process has registered it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = requests.get(f"{ui}/api/deployments/name/{name}", timeout=30)
        if answer.status_code == 200:
            return answer.json()
        time.sleep(1)
    raise AssertionError(f"deployment {name} was not registered in {timeout_s:g} s")


def wait_for_run(ui: str, deployment_id: str, timeout_s: float, required: bool = True) -> dict | None:
    """The flow run the form created, once the API has it (None after the timeout when not
    ``required``)."""
    deadline = time.monotonic() + timeout_s
    body = {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 1, "offset": 0}
    while time.monotonic() < deadline:
        if runs := api(ui, "/flow_runs/filter", body):
            return runs[0]
        time.sleep(1)
    if not required:
        return None
    raise AssertionError(f"no flow run of deployment {deployment_id} after submitting its form")


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_operator_reads_a_bad_record_and_starts_a_full_resync(demo: Demo, tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api")
    ui, home = demo.ui, demo.home
    screenshots = Path(os.environ.get("SCREENSHOTS_DIR") or tmp_path)
    bad = json.loads((home / "erp" / "expected.json").read_text())["employees"]["bad"][0]
    [sync_all] = api(ui, "/flow_runs/filter", {"flows": {"name": {"any_": ["sync-all"]}}, "limit": 1, "offset": 0,
                                               "sort": "START_TIME_ASC"})
    records = api(ui, "/artifacts/filter", {"artifacts": {"key": {"any_": ["employees-records"]}}, "limit": 10,
                                            "offset": 0})
    first = next(a for a in records if bad["key"] in json.dumps(a["data"]))
    deployment = served(ui, "employees/employees-full-resync")
    screenshots.mkdir(parents=True, exist_ok=True)

    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        page.goto(f"{ui}/runs/flow-run/{sync_all['id']}")
        page.get_by_text("Artifacts", exact=True).last.click()
        page.get_by_text("sync-all-overview").first.wait_for()  # the one table of every entity
        page.screenshot(path=screenshots / "sync-all-run.png")

        page.goto(f"{ui}/artifacts/artifact/{first['id']}")
        page.get_by_text(bad["key"]).first.wait_for()
        assert bad["field"] in page.inner_text("body")  # the message names the field
        page.screenshot(path=screenshots / "failed-records.png")

        page.goto(f"{ui}/deployments/deployment/{deployment['id']}/run")
        page.get_by_text("Full Resync").first.wait_for()
        page.wait_for_load_state("networkidle")  # the form validates against the deployment's schema
        page.screenshot(path=screenshots / "full-resync-form.png")
        submit = page.get_by_role("button", name="Submit")
        submit.click()
        # On a loaded machine the first click can land before the form is wired up: a user
        # would click again, once, if no run appears.
        run = wait_for_run(ui, deployment["id"], timeout_s=30, required=False)
        if run is None:
            submit.click()
            run = wait_for_run(ui, deployment["id"], timeout_s=120)
        browser.close()
    assert run["parameters"]["options"]["full_resync"] is True
    # The serve loop runs it: the operator's resync completes.
    assert finished(ui, run["id"], timeout_s=180) == "COMPLETED"


def finished(ui: str, flow_run_id: str, timeout_s: float) -> str | None:
    """The run's final state type, once it has one (None after the timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = api(ui, f"/flow_runs/{flow_run_id}")["state"]  # type: ignore[index]
        if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return state["type"]
        time.sleep(1)
    return None


def test_ctrl_c_stops_everything_the_demo_started_quietly(demo: Demo) -> None:
    """Ctrl-C once the serve loop has registered every deployment: the module's demo, the
    operator's work in the browser done (this test comes last in the module). (A Ctrl-C while
    the serve loop is still registering them went unanswered for more than 40 s on a loaded
    machine: a known defect, not covered here yet.)"""
    declared = len(yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"])
    assert wait_until(lambda: api(demo.ui, "/deployments/count", {}) == declared, START_BOUND_S)
    ctrl_c_stops_everything(demo)


def flow_run_processes(pids: set[int]) -> set[int]:
    """The served flow runs' processes among ``pids`` (``python -m prefect.engine``)."""
    return {pid for pid in running(pids) if "prefect.engine" in _command(pid)}


def ctrl_c_stops_everything(demo: Demo) -> None:
    started = family(demo.process.pid)
    assert len(started) >= 2, "the demo runs its own Prefect server"

    # The Ctrl-C comes while a served run is in flight (one started here, as from the UI): the
    # terminal's Ctrl-C reaches the demo alone, whose serve loop cancels that run itself; the
    # run neither goes on nor prints a traceback.
    api(demo.ui, f"/deployments/{served(demo.ui, 'vendors/vendors')['id']}/create_flow_run", {})
    assert wait_until(lambda: bool(flow_run_processes(family(demo.process.pid))), IN_FLIGHT_WAIT_S), \
        "the serve loop never started the run"
    os.killpg(demo.process.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
    stopped = wait_until(lambda: not running(started | family(demo.process.pid)), STOP_BOUND_S)
    assert stopped, f"left running: {described(running(started | family(demo.process.pid)))}; {where_it_is(demo)}"
    assert demo.process.wait(timeout=1) >= 0, "the demo ended by itself, not by a signal"
    assert "Traceback" not in demo.log_text(), demo.log_text()[-3000:]
