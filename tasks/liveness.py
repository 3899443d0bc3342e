"""Runs that died say so: which of an entity's ``running`` runs are dead, marked ``crashed``.

A run killed mid-way (SIGKILL, a lost machine, an unexpected error that skipped ``finish_run``)
never records its end, so its row stays ``running``. The next start of its entity looks at each
such row and marks the dead ones ``crashed``. Every rule errs on one side only: a run that may
still be running somewhere is left alone, because calling a live run crashed would hide it.

Each run records who runs it (``ProcessId``: host and pid namespace, boot, pid, process start):

1. **This process**: alive while registered here (``started``/``ended`` around the run).
2. **Another process of this machine** (same host name and pid namespace): alive while a process
   with that pid and that start time exists in this boot. A pid reused by another process, or a
   reboot, is told apart by the start time and the boot id.
3. **Anywhere else** (another host or container, or a run recorded before migration 0006): only
   Prefect can tell. Dead when its flow run is gone, final (Completed, Failed, Crashed,
   Cancelled), or is the very flow run this process runs again now (a retry of it); alive
   otherwise, and always alive without a flow run, since nothing can tell.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from uuid import UUID

import httpx
from prefect import get_client
from prefect.exceptions import ObjectNotFound

from connectors.state import RunRow, StateStore

_PROC = Path("/proc")
# Runs of this process that have not ended: rule 1.
_LIVE: set[str] = set()


@dataclass(frozen=True)
class ProcessId:
    host: str
    boot: str
    pid: int
    start: str  # the process's start in clock ticks since boot (Linux); "" where unknown

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ProcessId:
        return cls(**json.loads(text))


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _host() -> str:
    # The pid namespace too: containers that share a host name (host networking) see other pids.
    try:
        namespace = os.readlink(_PROC / "self" / "ns" / "pid")
    except OSError:
        namespace = ""
    return f"{socket.gethostname()} {namespace}".strip()


def _start_of(pid: int) -> str | None:
    """The process's start time, "" where /proc cannot say; None when there is no such process."""
    stat = _read(_PROC / str(pid) / "stat")
    if stat:
        return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name
    if _PROC.joinpath("self", "stat").is_file():
        return None  # /proc works here, so the process is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, owned by someone else
    return ""


def this_process() -> ProcessId:
    pid = os.getpid()
    return ProcessId(_host(), _read(_PROC / "sys" / "kernel" / "random" / "boot_id"), pid, _start_of(pid) or "")


def started(run_id: str) -> None:
    _LIVE.add(run_id)


def ended(run_id: str) -> None:
    _LIVE.discard(run_id)


def why_dead(run: RunRow, current_flow_run_id: str | None) -> str | None:
    """Why ``run`` cannot be running any more; None when it may be."""
    me = this_process()
    who = ProcessId.from_json(run.process) if run.process else None
    if who == me:
        return None if run.run_id in _LIVE else "it stopped in this process without recording its end"
    if who is not None and who.host == me.host:
        return _gone_here(who, me)
    if run.flow_run_id is None:
        return None
    if run.flow_run_id == current_flow_run_id:
        return f"its flow run {run.flow_run_id} is being run again now"
    return _gone_in_prefect(run.flow_run_id)


def _gone_here(who: ProcessId, me: ProcessId) -> str | None:
    if who.boot != me.boot:
        return f"its machine {who.host.split()[0]} restarted since"
    start = _start_of(who.pid)
    if start is None or (who.start and start and start != who.start):
        return f"its process {who.pid} on {who.host.split()[0]} is gone"
    return None


def _gone_in_prefect(flow_run_id: str) -> str | None:
    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(flow_run_id)).state
    except ObjectNotFound:
        return f"its flow run {flow_run_id} no longer exists in Prefect"
    except (httpx.HTTPError, ValueError):
        return None  # Prefect cannot say now: leave it, the next start asks again
    if state is not None and state.is_final():
        return f"its flow run {flow_run_id} is {state.type.value.capitalize()} in Prefect"
    return None


def mark_dead_runs(store: StateStore, entity: str, current_flow_run_id: str | None,
                   warn: Callable[[str], None]) -> list[str]:
    """Mark ``crashed`` every ``running`` run of ``entity`` that is dead; their ids."""
    marked: list[str] = []
    for run in store.runs(entity, limit=1000, status="running"):
        why = why_dead(run, current_flow_run_id)
        if why is None:
            continue
        message = (f"crashed: {why}. It stopped without recording its end; its cursor did not move, "
                   "so later runs read its records again")
        if store.mark_crashed(run.run_id, message):
            warn(f"{entity}: run {run.run_id} started {run.started_at:%Y-%m-%d %H:%M:%S} UTC {message}")
            marked.append(run.run_id)
    return marked
