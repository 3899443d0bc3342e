"""The chaos run's runner: ``procore-sync sync all`` in a child process, with an optional
stopping point where the parent kills it (bench/chaos.py).

A SIGKILL is only worth something at a known moment, and a blind sleep never finds one. So the
child, told by ``CHAOS_KILL_AT`` (``batch_record:N`` or ``cursor:N``), stops at the N-th time it
reaches that moment, writes the moment to ``CHAOS_SIGNAL`` and waits there for the parent's
SIGKILL; the work up to that instant is exactly the real runner's:

- ``batch_record``: a write batch was answered by Procore, its outcomes are not recorded yet;
- ``cursor``: an entity's cursor has just moved, its run has not recorded its end.

The third moment, a kill while a batch is in flight (written in Procore, answer never read), is
the parent's: its sandbox kills the child from inside the N-th write call.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KILL_AT = "CHAOS_KILL_AT"
SIGNAL = "CHAOS_SIGNAL"


def stop_here(moment: str) -> None:
    """Tell the parent where we are, then wait for its SIGKILL (never returns)."""
    Path(os.environ[SIGNAL]).write_text(moment + "\n", encoding="utf-8")
    threading.Event().wait()


def countdown(times: int) -> Callable[[], bool]:
    """True on the ``times``-th call, from whichever thread makes it (sync-all runs threads)."""
    lock, left = threading.Lock(), [times]

    def reached() -> bool:
        with lock:
            left[0] -= 1
            return left[0] == 0

    return reached


def stop_between_batch_and_record(times: int) -> None:
    import tasks.outbound

    write_batch, reached = tasks.outbound.write_batch, countdown(times)

    def answered_then_stop(*args: Any, **kwargs: Any) -> Any:
        outcomes = write_batch(*args, **kwargs)
        if reached():
            stop_here(f"batch_record: {args[1].name} batch answered, outcomes not recorded")
        return outcomes

    tasks.outbound.write_batch = answered_then_stop


def stop_after_cursor_move(times: int) -> None:
    from connectors.state import StateStore

    set_cursor, reached = StateStore.set_cursor, countdown(times)

    def moved_then_stop(self: StateStore, entity: str, value: Any) -> None:
        set_cursor(self, entity, value)
        if reached():
            stop_here(f"cursor: {entity} cursor moved, run not finished")

    StateStore.set_cursor = moved_then_stop  # type: ignore[method-assign]


STOPS = {"batch_record": stop_between_batch_and_record, "cursor": stop_after_cursor_move}


def main() -> None:
    if point := os.environ.get(KILL_AT):
        moment, times = point.split(":")
        STOPS[moment](int(times))
    from app.cli import app

    app(["sync", "all", "--json"])


if __name__ == "__main__":
    main()
