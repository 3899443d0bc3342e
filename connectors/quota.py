"""One quota budget for every flow: Procore's two windows as two Prefect global concurrency limits.

Procore counts every call of a company in an hourly window and in a rolling 10-second spike
window. All flow runs, in every process and on every worker, draw from two limits kept by the
Prefect server, one per window, so that together they spend what Procore allows and no more:

- **The spike window** (``<name>-spike``) is a sliding log: a limit of the window's calls (one
  below Procore's figure), and every call holds one slot, under a lease, from the moment it is
  taken until the window's length after the call was answered (``SpikeLog``): Procore counted
  the call somewhere in between. So a sync sends the window's calls at once and then one call for each call
  that leaves the window, Procore's own rule; no refill rate to guess.
- **The hour** (``<name>``) is a token bucket of the hour's calls refilling at the hour's
  average (Prefect's slot decay), taken a few slots at a time: a sync bursts while the hour has
  room and, on a long run, slows to the hour's average only once the hour is spent.

Procore's ``X-Rate-Limit-Remaining``/``-Reset`` headers stay the truth (``procore_pacing``): when
other applications spend the same quota and Procore says a window is spent, the client waits
for its reset (a deployment's run waits in AwaitingQuota), whatever the budget says.

Waiting for a slot has a limit (``quota_wait_limit_s``; a deployment's own run is given
``quota_defer_after_s`` by the engine, which then defers it): past it, the gate calls its
``on_timeout`` hook (the engine defers the run there) or raises ``QuotaUnavailable``.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import NoReturn
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.concurrency.sync import rate_limit
from prefect.settings import PREFECT_API_URL, temporary_settings

from procore_sync.errors import ConfigError, TransientError
from procore_sync.settings import Settings

logger = logging.getLogger(__name__)

SPIKE_WINDOW_S = 10.0
# A spike slot is held this much longer than a window after its call's answer: the two hosts'
# clocks tick apart by a little.
SPIKE_TRANSIT_S = 0.1
# A lease of spike slots lives this long on the server (Prefect's shortest lease; its repossessor
# frees it soon after): the net for a process that dies. Its slots make no call later than a
# window and this margin before it ends, so none of its calls is in the window when it may go
# (a call answered within the margin; Procore's calls take well under a second).
SPIKE_LEASE_S = 60.0
SPIKE_LEASE_MARGIN_S = 5.0
# Spike slots are taken this many at a time (capped at a quarter of the window) and kept while
# the process uses them.
SPIKE_CHUNK = 4
# Hour slots are taken this many at a time: one Prefect round trip per chunk, not per call.
HOUR_CHUNK = 10


@dataclass(frozen=True)
class Budget:
    """The two limits: ``spike_slots`` calls in any window of ``spike_hold_s``; an hour bucket of
    ``hour_limit`` calls refilling at ``hour_per_second``."""

    spike_slots: int
    spike_hold_s: float
    hour_limit: int
    hour_per_second: float


def budget_for(per_hour: int, spike_per_10s: int, hour_s: float = 3600.0) -> Budget:
    """Procore's windows as limits. The spike keeps one call in hand: our slot is taken a moment
    before Procore counts the call, so two calls a window apart by our clock may land closer."""
    return Budget(spike_slots=max(1, spike_per_10s - 1), spike_hold_s=SPIKE_WINDOW_S + SPIKE_TRANSIT_S,
                  hour_limit=per_hour, hour_per_second=per_hour / hour_s)


def spike_limit_name(name: str) -> str:
    return f"{name}-spike"


def ensure_quota_limit(settings: Settings) -> Budget:
    """Create or update both limits from the settings; safe to call at every start."""
    budget = budget_for(settings.quota_per_hour, settings.quota_spike_per_10s, settings.quota_hour_s)
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(
            name=settings.quota_limit_name, limit=budget.hour_limit, slot_decay_per_second=budget.hour_per_second)
        client.upsert_global_concurrency_limit_by_name(
            name=spike_limit_name(settings.quota_limit_name), limit=budget.spike_slots, slot_decay_per_second=0.0)
    logger.info(
        "quota budget %r: %d calls an hour (refilling %.2f/s), %d calls in any %g s",
        settings.quota_limit_name, budget.hour_limit, budget.hour_per_second, budget.spike_slots,
        budget.spike_hold_s)
    return budget


class QuotaUnavailable(TransientError):
    """No slot of the shared budget came free within the wait's limit."""

    hint = ("other runs are using the shared quota budget, or it refills too slowly: see its global "
            "concurrency limit in the Prefect UI (Concurrency) and the PROCORE_SYNC_QUOTA_* settings; the "
            "next run tries again (raise PROCORE_SYNC_QUOTA_WAIT_LIMIT_S to wait longer).")


class QuotaBudgetMissing(ConfigError):
    """A limit of the shared budget does not exist on the Prefect server."""

    hint = ("it was deleted on the Prefect server while this process ran (each process makes it from the "
            "PROCORE_SYNC_QUOTA_* settings at its first call): the next run makes it again.")


@dataclass
class SpikeStats:
    """What a log's leases cost: ``leases`` granted, ``refusals`` (the server's 423s), and the
    slots of leases given back without ever making a call (``unspent``: held for nothing)."""

    leases: int = 0
    refusals: int = 0
    unspent: int = 0


Answered = Callable[[], None]  # what the gate hands a call: to be called once the call is over


@dataclass
class _Lease:
    """Spike slots taken in one request. Each slot carries one call per window while the lease
    lives: it is spent again once its last call has left the window, a window after its answer."""

    id: str
    slots: int
    taken_at: float  # when it was asked for: the server's lease began no earlier
    usable_until: float  # no call after this: its window ends before the server's lease does
    calls: list[float] = field(default_factory=list)  # its calls in the window: answered at, inf on their way
    last_answer: float | None = None
    spent: int = 0

    def free_at(self, hold_s: float) -> float:
        """When one of its slots is free for a call: at once, or when its oldest call leaves
        (never, while all its calls are on their way)."""
        return min(self.calls) + hold_s if len(self.calls) >= self.slots else self.taken_at

    def due_at(self, hold_s: float) -> float:
        """When it may go back: a window after its last answer (after it was taken, if no call);
        never while a call is on its way."""
        if math.inf in self.calls:
            return math.inf
        return (self.last_answer if self.last_answer is not None else self.taken_at) + hold_s

    def answered(self, now: float) -> None:
        """One of its calls on their way is over: it leaves the window a window from now."""
        if math.inf in self.calls:
            self.calls[self.calls.index(math.inf)] = now
            self.last_answer = now


class SpikeLog:
    """Procore's rolling spike window on the Prefect server, shared by every process.

    A global concurrency limit (no decay) of the window's calls. A process takes its slots a few
    at a time under one lease (``chunk``) and keeps them while it is busy: each slot carries one
    call per window, so a slot is spent again, without asking the server, as soon as its last
    call has left the window. A call is in the window from its slot's take until a window after
    its answer: Procore counts it when it arrives, which on a busy host can be seconds after the
    take (counted from the take, the sandbox saw a 24-slot budget's 25th call in a window). The server holds at most ``limit`` slots and each makes at most one
    call in any window: at most ``limit`` calls fall in any window, across processes, and a full
    window's calls go at once. A lease is given back a window after its last call, once the
    process stops using it: when it has made no call for a window (the process needs fewer
    slots; other processes get them), or when it is too old to outlive another window
    (``SPIKE_LEASE_S`` less a window and a margin: the server may repossess it after that, with
    its calls still in the window). A background thread gives leases back as they fall due
    (``release_due``); a process that dies leaves its leases to expire.

    Measured on 2 busy cores: a Prefect request per call cost 90-160 ms; a lease per four calls,
    given back a window after them, still cost two requests and a refusal's wait per four calls
    and held a sync-all to 0.75 of Procore's rate. A process that needs more slots than it holds
    asks for another lease when its own next slot is further than a slot's time away (a full
    window frees one every ``hold_s / limit``), and not again for that long after a refusal:
    Prefect's own Retry-After grows with every refusal of every waiter, a stall of seconds.
    """

    def __init__(self, name: str, slots: int, hold_s: float, *, chunk: int = SPIKE_CHUNK,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 background: bool = True) -> None:
        self.name, self.limit, self.hold_s = name, slots, hold_s
        # At most a quarter of the window per lease: a process holds only what it uses.
        self.chunk = max(1, min(chunk, slots // 4))
        self._poll_s = hold_s / max(1, slots)  # how often a slot of a full window comes free
        self._clock, self._sleep, self._background = clock, sleep, background
        self._leases: list[_Lease] = []  # oldest first: spent first, so the newest go idle and back
        self._ask_after = float("-inf")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False
        self._client: SyncPrefectClient | None = None
        self._api_url: str | None = None  # the server the leases are on
        self.stats = SpikeStats()

    def take(self, deadline: float) -> Answered | None:
        """One slot before ``deadline`` (``time.monotonic``), or None when none came free; the
        caller calls what it gets once the call is over (answered, refused or lost).

        The deadline bounds a wait for the server's slots (other processes hold them), never a
        wait for one of the process's own: that ends within a window (a slot frees, or its lease
        goes back and room opens to ask), sooner than any deferral and restart of the run; cut
        short, a deployment's run was deferred every window's calls (bench/quota.py's three hours).
        """
        while True:
            with self._lock:
                if (lease := self._spend()) is not None:
                    return partial(self._answered, lease)
                if self._release(self._pop_due()):
                    continue
                own_in = self._own_slot_in()
                if own_in > self._poll_s and self._may_ask() and self._ask():
                    continue
                holding = bool(self._leases)
            left = deadline - time.monotonic()
            if left <= 0 and not holding:
                return None
            self._sleep(min(own_in, self._poll_s, left) if left > 0 else min(own_in, self._poll_s))

    def _answered(self, lease: _Lease) -> None:
        with self._lock:
            lease.answered(self._clock())
        self._wake.set()  # the giving back thread may now see when the lease falls due

    def release_due(self) -> int:
        """Give back every lease whose last call has left the window and that is not in use."""
        with self._lock:
            due = self._pop_due()
        return self._release(due)

    def drain(self) -> None:
        """Give back every lease held, each when its window has passed (at most ``hold_s``)."""
        try:
            with self._lock:
                for lease in self._leases:
                    lease.usable_until = min(lease.usable_until, self._clock())
                    while math.inf in lease.calls:  # the process is ending: its calls are over
                        lease.answered(self._clock())
            # A client of its own that has not connected yet: at exit the server may be gone,
            # and Prefect's client, once connected, tries a lost server again for a minute per
            # request (a test session's processes, whose server stopped first, hung six minutes).
            # On the server the slots were taken from: at exit the settings may name none any
            # more, and Prefect would start a server of its own, left running after the process.
            with temporary_settings(updates={PREFECT_API_URL: self._api_url}), \
                    get_client(sync_client=True) as client:
                while self._leases:
                    with self._lock:
                        wait_s = self._next_due_in()
                    self._sleep(wait_s)
                    with self._lock:
                        due = self._pop_due()
                    self._release(due, client)
        except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - leases expire on the server
            # At exit the Prefect server may be gone, or Ctrl-C may cut the wait short (a served
            # run stopped with its serve process): either way the leases free the slots.
            logger.debug("left quota slots of %r to their leases: %r", self.name, exc)

    def _spend(self) -> _Lease | None:
        """One call on a free slot of a lease in its life: the lease (under ``_lock``)."""
        now = self._clock()
        for lease in self._leases:
            if now > lease.usable_until:
                continue
            lease.calls = [answered for answered in lease.calls if answered + self.hold_s > now]
            if len(lease.calls) < lease.slots:
                lease.calls.append(math.inf)
                lease.spent += 1
                return lease
        return None

    def _own_slot_in(self) -> float:
        """Seconds until one of the held slots is free for a call, or a lease goes back to the
        server (room to ask); never (inf) when nothing is held or all are on their way: the
        process asks the server (under ``_lock``)."""
        now = self._clock()
        times = [lease.due_at(self.hold_s) for lease in self._leases]
        times += [t for lease in self._leases if (t := max(now, lease.free_at(self.hold_s))) <= lease.usable_until]
        return max(0.0, min(times, default=math.inf) - now)

    def _may_ask(self) -> bool:
        """Not while the process holds the whole limit, nor within a slot's time of a refusal."""
        held = sum(lease.slots for lease in self._leases)
        return held + self.chunk <= self.limit and self._clock() >= self._ask_after

    def _pop_due(self) -> list[_Lease]:
        now = self._clock()
        due = [lease for lease in self._leases if lease.due_at(self.hold_s) <= now]
        self._leases = [lease for lease in self._leases if lease not in due]
        for lease in due:
            self.stats.unspent += max(0, lease.slots - lease.spent)
        return due

    def _release(self, leases: list[_Lease], client: SyncPrefectClient | None = None) -> int:
        for lease in leases:
            (client or self._prefect()).release_concurrency_slots_with_lease(UUID(lease.id))
        return len(leases)

    def _ask(self) -> bool:
        """A new lease of ``chunk`` slots, if the server has them (under ``_lock``)."""
        asked = self._clock()
        try:
            answer = self._prefect().increment_concurrency_slots_with_lease(
                names=[self.name], slots=self.chunk, mode="concurrency", lease_duration=SPIKE_LEASE_S)
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code == 423:
                self.stats.refusals += 1
                self._ask_after = self._clock() + self._poll_s
                return False
            raise
        body = answer.json()
        if not body.get("limits"):
            raise QuotaBudgetMissing(f"the shared quota budget's limit {self.name!r} does not exist")
        self.stats.leases += 1
        usable_until = asked + SPIKE_LEASE_S - self.hold_s - SPIKE_LEASE_MARGIN_S
        self._leases.append(_Lease(str(body["lease_id"]), self.chunk, asked, usable_until))
        self._start_giving_back()
        return True

    def _prefect(self) -> SyncPrefectClient:
        """One client for the log's life (httpx's client is thread-safe): a client per request
        paid a connection per call."""
        if self._client is None:
            self._client = get_client(sync_client=True).__enter__()
            self._api_url = str(self._client.api_url)
        return self._client

    def _start_giving_back(self) -> None:
        if not self._registered:
            # A process ending (a deferred run's, a CLI's) gives its slots back at their time
            # instead of leaving them to the lease's expiry, a minute or more later.
            atexit.register(self.drain)
            self._registered = True
        if self._background and (self._thread is None or not self._thread.is_alive()):
            self._thread = threading.Thread(target=self._give_back, name=f"quota {self.name}", daemon=True)
            self._thread.start()
        self._wake.set()

    def _next_due_in(self) -> float:
        """Seconds until the next lease may go back, at most a window: a lease with a call on its
        way has no time yet, and the call's answer wakes the giving back (under ``_lock``)."""
        times = [lease.due_at(self.hold_s) for lease in self._leases]
        return max(0.0, min([*times, self._clock() + self.hold_s]) - self._clock())

    def _give_back(self) -> None:
        """The background thread: returns leases as they fall due, ends when none is held."""
        while True:
            with self._lock:
                if not self._leases:
                    self._thread, self._registered = None, False
                    atexit.unregister(self.drain)
                    return
                wait_s = self._next_due_in()
            self._wake.wait(wait_s)
            self._wake.clear()
            try:
                self.release_due()
            except Exception as exc:  # noqa: BLE001 - a lost release only delays the slot (lease)
                logger.warning("could not give back quota slots of %r (their leases expire): %s", self.name, exc)
                self._sleep(1.0)


class QuotaGate:
    """The ``before_request`` hook: one slot of each window per Procore call.

    Hour slots are taken from the server a few at a time and spent locally, one per call: a run
    never makes more calls than it took slots, so the shared bound holds, and the Prefect round
    trip is paid once per chunk (at most ``chunk - 1`` hour slots go unused when a run ends). The
    spike slot is spent per call, right before it, and held until a window after its answer.
    """

    def __init__(self, name: str, chunk: int, *, spike: SpikeLog, wait_limit_s: float = 3600.0,
                 on_timeout: Callable[[str], None] | None = None) -> None:
        self.name, self.chunk, self.spike = name, max(1, chunk), spike
        self.wait_limit_s, self.on_timeout = wait_limit_s, on_timeout
        self._left = 0
        self._lock = threading.Lock()

    def __call__(self) -> Answered:
        """Wait for the call's slots; what it returns is to be called once the call is over."""
        with self._lock:
            deadline = time.monotonic() + self.wait_limit_s
            if self._left == 0:
                self._acquire_hour()
                self._left = self.chunk
            if (answered := self.spike.take(deadline)) is None:
                self._timed_out(None)
            self._left -= 1
            return answered

    def _acquire_hour(self) -> None:
        try:
            # strict: a missing limit must stop us, not silently let every call through.
            rate_limit(self.name, occupy=self.chunk, strict=True, timeout_seconds=self.wait_limit_s)
        except TimeoutError as exc:
            self._timed_out(exc)

    def _timed_out(self, cause: BaseException | None) -> NoReturn:
        message = f"no call of the shared quota budget {self.name!r} came free within {self.wait_limit_s:g} s"
        if self.on_timeout is not None:
            self.on_timeout(message)  # the engine defers a deployment's run here
        raise QuotaUnavailable(message) from cause


_SPIKE_LOGS: dict[tuple[str, str, int, float], SpikeLog] = {}
_SPIKE_LOGS_LOCK = threading.Lock()


def spike_log(name: str, slots: int, hold_s: float) -> SpikeLog:
    """This process's one log of a spike limit: every client of the process (sync-all's threads)
    shares it, so a waiting call wakes exactly when the process's next slot leaves the window."""
    with _SPIKE_LOGS_LOCK:
        # Per Prefect server too: the log keeps one client, bound to the server it was made for.
        key = (str(PREFECT_API_URL.value()), name, slots, hold_s)
        if key not in _SPIKE_LOGS:
            _SPIKE_LOGS[key] = SpikeLog(name, slots, hold_s)
        return _SPIKE_LOGS[key]


_MADE: set[tuple[str, str, Budget]] = set()
_MADE_LOCK = threading.Lock()


def quota_gate(settings: Settings, *, wait_limit_s: float | None = None,
               on_timeout: Callable[[str], None] | None = None) -> QuotaGate | None:
    """The gate for one Procore client, or None when the budget is off; it waits for a slot at
    most ``wait_limit_s`` (default: the settings' ``quota_wait_limit_s``).

    The first gate of a process makes the budget's limits from its settings (once per Prefect
    server and budget): a run served by a worker on a new Prefect server found none before, as
    only the CLI made them. Processes with other figures for the same budget name rewrite them,
    the last one wins; give every host of a company the same ``PROCORE_SYNC_QUOTA_*`` settings."""
    if not settings.quota_enabled:
        return None
    budget = budget_for(settings.quota_per_hour, settings.quota_spike_per_10s, settings.quota_hour_s)
    made = (str(PREFECT_API_URL.value()), settings.quota_limit_name, budget)
    with _MADE_LOCK:
        if made not in _MADE:
            ensure_quota_limit(settings)
            _MADE.add(made)
    spike = spike_log(spike_limit_name(settings.quota_limit_name), budget.spike_slots, budget.spike_hold_s)
    return QuotaGate(settings.quota_limit_name, chunk=min(HOUR_CHUNK, budget.hour_limit), spike=spike,
                     wait_limit_s=settings.quota_wait_limit_s if wait_limit_s is None else wait_limit_s,
                     on_timeout=on_timeout)
