"""Ctrl-C stops the demo: everything it started (the serve loop, the Procore sandbox, the Prefect
server) exits, quietly, within a few seconds.

A real ``procore-sync demo`` on a small company, in its own process group as a terminal runs it;
once it serves, the test sends SIGINT to the group, as Ctrl-C does, and watches every process
the demo started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from app.prefect_server import free_port

# "It stops": a bound on the wait, reached only when something is left running.
STOP_BOUND_S = 15.0
START_BOUND_S = 300.0


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


def wait_until(condition: Callable[[], bool], bound_s: float) -> bool:
    """Whether ``condition`` held within ``bound_s``, polled."""
    deadline = time.monotonic() + bound_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_ctrl_c_stops_everything_the_demo_started_quietly(tmp_path: Path) -> None:
    """Ctrl-C as soon as the demo says it serves: its last syncs' quota slots still held, the
    serve loop still registering the deployments."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCORE_SYNC_", "PREFECT_"))}
    env["PROCORE_SYNC_HOME"] = str(tmp_path)
    port, log = free_port(), tmp_path / "demo.log"
    with log.open("w") as sink:
        demo = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "demo", "--scale", "0.05", "--prefect-port", str(port),
             "--sandbox-port", str(free_port())],
            env=env, stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
    started: set[int] = {demo.pid}
    try:
        assert wait_until(lambda: "Serving the deployments" in log.read_text(errors="replace"), START_BOUND_S), \
            log.read_text(errors="replace")[-3000:]
        started = family(demo.pid)
        assert len(started) >= 2, "the demo runs its own Prefect server"

        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        stopped = wait_until(lambda: not running(started | family(demo.pid)), STOP_BOUND_S)
        assert stopped, f"left running: {running(started | family(demo.pid))}; " + log.read_text(errors="replace")[-2000:]
        assert demo.wait(timeout=1) >= 0, "the demo ended by itself, not by a signal"
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text(errors="replace")[-3000:]
    finally:
        for pid in running(started | family(demo.pid)):
            os.kill(pid, signal.SIGKILL)
        demo.wait(timeout=10)
