"""One sync-all in its own process, for bench/delta.py: prints one JSON line with the run's
summaries, its Procore calls per endpoint, and this process's own time and peak memory.

A process of its own, so that its peak memory is procore-sync's alone (the sandbox runs in the
parent) and its CPU seconds are the local work of the run, not Procore's answers.
"""

from __future__ import annotations

import cProfile
import json
import logging
import os
import re
import resource
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# "GET /rest/v1.0/projects/12/budget_changes -> 200 (quota ...)": the client's line per call.
CALL = re.compile(r"^(GET|POST|PATCH|PUT|DELETE) (\S+?)(\?\S*)? -> ")
NUMBER = re.compile(r"/\d+(?=/|$)")


class CallCounter(logging.Handler):
    """Counts the client's debug line of every answered call, by method and path pattern."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.calls: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if match := CALL.match(record.getMessage()):
            path = NUMBER.sub("/{id}", match.group(2).split("://", 1)[-1].partition("/")[2])
            self.calls[f"{match.group(1)} /{path}"] += 1


def peak_rss_mib() -> float:
    """This process's peak resident memory. Not ``ru_maxrss``: Linux carries it over ``exec``
    from the process that started this one (the bench, holding the sandbox and the first
    sync-all: 370 MiB at scale 1, 600 at scale 5, reported as the child's); ``VmHWM`` is the
    high-water mark of this program's own memory."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return kib / 1024


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def profile_threads(main: cProfile.Profile) -> None:
    """Profile every thread too (sync-all runs its entities in threads) into ``main``'s file:
    each thread's stats are added to it when the thread ends."""
    import threading

    run, lock, done = threading.Thread.run, threading.Lock(), []

    def profiled_run(thread: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run(thread)
        finally:
            profiler.disable()
            with lock:
                done.append(profiler)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main.thread_profiles = done  # type: ignore[attr-defined]


def dump_profiles(main: cProfile.Profile, path: str) -> None:
    import pstats

    stats = pstats.Stats(main)
    for profiler in main.thread_profiles:  # type: ignore[attr-defined]
        stats.add(profiler)
    stats.dump_stats(path)


def main() -> None:
    from app.runner import run_entities
    from procore_sync.settings import Settings
    from tasks.spec import SyncOptions

    counter = CallCounter()
    logger = logging.getLogger("connectors.procore")
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the count, not the lines
    profile_to = os.environ.get("DELTA_PROFILE")
    profiler = cProfile.Profile() if profile_to else None
    if profiler:
        profile_threads(profiler)
    cpu, wall = cpu_s(), time.monotonic()
    if profiler:
        profiler.enable()
    summaries = run_entities(Settings(), None, SyncOptions())
    if profiler:
        profiler.disable()
        dump_profiles(profiler, f"{profile_to}.{os.getpid()}")
    print(json.dumps({
        "summaries": [s.model_dump(mode="json") for s in summaries],
        "calls": dict(counter.calls),
        "wall_s": round(time.monotonic() - wall, 2),
        "cpu_s": round(cpu_s() - cpu, 2),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }))


if __name__ == "__main__":
    main()
