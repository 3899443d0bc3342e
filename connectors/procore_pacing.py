"""Pacing: spend Procore's quota evenly instead of running into 429s.

Procore reports, on every response, the window we are likely to exhaust first (the 10-second
spike window or the hourly one) in ``X-Rate-Limit-Limit/-Remaining/-Reset`` headers, and asks
clients to treat them as the source of truth (reference §2). The pacer remembers the last report
and, before each request, waits when the window is spent (until it resets) or nearly spent
(spreading the calls left over the time left). Other clients may share the quota, so a 429 can
still happen; the retry layer in ``connectors.procore`` handles it and reports its wait here so
that every quota wait is logged and counted the same way. All waiting goes through the injected
``sleep`` and ``clock``, so tests never sleep.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from procore_sync.redact import redact

log = logging.getLogger("connectors.procore")

# A window is at most an hour; a longer wait means a skewed clock or a bogus header.
MAX_QUOTA_WAIT_S = 3600.0
# Waits shorter than this are routine spacing, not worth an operator's attention.
ANNOUNCE_WAIT_S = 1.0

OnWait = Callable[[datetime, str], None]
# Called before each request (the shared budget's gate); what it returns, if anything, is called
# once the request is over: answered, refused or lost.
BeforeRequest = Callable[[], Callable[[], None] | None]


@dataclass
class QuotaStatus:
    """What the last ``X-Rate-Limit-*`` headers said; ``None`` until a response carried them."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None  # tz-aware UTC

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> QuotaStatus | None:
        remaining = _int_header(headers, "X-Rate-Limit-Remaining")
        reset = _int_header(headers, "X-Rate-Limit-Reset")
        if remaining is None and reset is None:
            return None
        reset_at = datetime.fromtimestamp(reset, timezone.utc) if reset is not None else None
        return cls(_int_header(headers, "X-Rate-Limit-Limit"), remaining, reset_at)


@dataclass
class CallStats:
    api_calls: int = 0  # every request to the API host, answered or failed; not token calls
    write_calls: int = 0  # POST/PATCH/PUT/DELETE to /rest/...
    token_calls: int = 0
    retries: int = 0
    waited_s: float = 0.0  # waiting for quota: pacing and 429 waits (not 5xx backoff)
    split_calls: int = 0  # calls spent halving batches refused as a whole (tasks/writers.py)
    quota: QuotaStatus = field(default_factory=QuotaStatus)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(float(headers[name]))
    except (KeyError, TypeError, ValueError):
        return None


class HourWindow:
    """The company's hourly window as the process's clients spend it, kept for all of them.

    A client's own last answer is stale as soon as another thread's call lands: with sync-all's
    entities in threads, each client had last read "1 left" as the hour ran out, each sent a
    call, and Procore refused the rest. And Procore reports the hour only once it has fewer calls
    left than the spike window, which a run at full speed keeps at one or two: the hour showed up
    in the headers only when it was spent, with calls already on their way (bench/quota.py, the
    small set at scale 5: a 429 at every hour's end). So the process counts the hour's calls
    itself: the calls sent in the window, on their way or answered, against its limit; a call that
    would overdraw it waits for the reset. With the budget's figures (``limit``, ``hour_s``: the
    settings' quota) the window opens with the process's first call, as Procore's does; without
    them it is known only from Procore's hourly reports. Those stay the truth: each one sets the
    limit, the calls used (Procore's count plus those still on their way) and the reset; a refused
    call is not counted. Answers about the spike window leave it alone: the budget's spike log
    spaces those calls.
    """

    def __init__(self, spike_limit: int, limit: int | None = None, hour_s: float | None = None) -> None:
        self._spike_limit, self._limit, self._hour_s = spike_limit, limit, hour_s
        self._lock = threading.Lock()
        self._reset_at: float | None = None
        self._used = 0  # calls of the current window, answered or on their way
        self._in_flight = 0

    def take(self, now: float) -> float:
        """Count a call about to be sent, or return the seconds to wait first (nothing counted)."""
        with self._lock:
            if self._reset_at is not None and now >= self._reset_at:
                self._reset_at, self._used = None, self._in_flight  # a new window: what is on its way
            if self._reset_at is None and self._hour_s is not None:
                self._reset_at = now + self._hour_s
            if self._limit is not None and self._reset_at is not None and self._used >= self._limit:
                return min(self._reset_at - now, MAX_QUOTA_WAIT_S)
            self._used += 1
            self._in_flight += 1
            return 0.0

    def answered(self, quota: QuotaStatus | None, *, refused: bool = False) -> None:
        """A counted call is over (answered, refused or lost); ``quota`` is what its answer said."""
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            self._used -= refused  # Procore did not count it
            if quota is None or quota.remaining is None or quota.reset_at is None or quota.limit is None:
                return
            if quota.limit <= self._spike_limit:
                return
            self._limit, self._reset_at = quota.limit, quota.reset_at.timestamp()
            self._used = quota.limit - quota.remaining + self._in_flight

    def describe(self) -> str:
        with self._lock:
            left = "?" if self._limit is None else max(0, self._limit - self._used)
            return f"{left} calls left in the hour, {self._in_flight} on their way"


_HOUR_WINDOWS: dict[tuple[str, str, int], HourWindow] = {}
_HOUR_WINDOWS_LOCK = threading.Lock()


def hour_window(api_base: str, client_id: str, company_id: int, spike_limit: int,
                limit: int | None = None, hour_s: float | None = None) -> HourWindow:
    """The process's one window of a company's quota, as one app's token spends it."""
    with _HOUR_WINDOWS_LOCK:
        return _HOUR_WINDOWS.setdefault((api_base, client_id, company_id), HourWindow(spike_limit, limit, hour_s))


class Pacer:
    """Waits before a request when the reported quota window is spent or nearly spent."""

    def __init__(
        self,
        stats: CallStats,
        *,
        low_water: int,
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        on_wait: OnWait | None = None,
        hour: HourWindow | None = None,
    ) -> None:
        self._stats = stats
        self._low_water = low_water
        self._sleep = sleep
        self._clock = clock
        self._on_wait = on_wait
        self._hour = hour

    def observe(self, headers: Mapping[str, str] | None, *, refused: bool = False) -> None:
        """What a call's answer said of the quota (None: the call got no answer; ``refused``: a 429)."""
        quota = QuotaStatus.from_headers(headers) if headers is not None else None
        if quota is not None:
            self._stats.quota = quota
        if self._hour is not None:
            self._hour.answered(quota, refused=refused)

    def before_request(self) -> None:
        delay = self.delay()
        if delay > 0:
            self.announce(delay)
            self._sleep(delay)
        while self._hour is not None and (delay := self._hour.take(self._clock())) > 0:
            self.announce(delay, self._hour.describe())
            self._sleep(delay)

    def delay(self) -> float:
        """Seconds to wait before the next request, from the last quota report."""
        quota = self._stats.quota
        left = self.seconds_to_reset()
        if quota.remaining is None or left is None or left <= 0:
            return 0.0
        if quota.remaining <= 0:
            return min(left, MAX_QUOTA_WAIT_S)
        if quota.remaining <= self._low_water:
            # Spread what is left evenly so the last call lands just before the reset.
            return min(left / (quota.remaining + 1), MAX_QUOTA_WAIT_S)
        return 0.0

    def seconds_to_reset(self) -> float | None:
        reset_at = self._stats.quota.reset_at
        return None if reset_at is None else reset_at.timestamp() - self._clock()

    def announce(self, seconds: float, left: str | None = None) -> None:
        """Count a quota wait and, when it is long enough to notice, log it and tell on_wait.

        The caller does the sleeping (directly, or tenacity for a 429).
        """
        self._stats.waited_s += seconds
        if seconds < ANNOUNCE_WAIT_S:
            return
        until = datetime.fromtimestamp(self._clock() + seconds, timezone.utc)
        message = redact(self._describe(until, seconds, left))
        log.info(message)
        if self._on_wait is not None:
            self._on_wait(until, message)

    def _describe(self, until: datetime, seconds: float, left: str | None) -> str:
        """``left``: what is left, when not the client's own last report (the shared hour)."""
        if left is None:
            remaining = self._stats.quota.remaining
            to_reset = self.seconds_to_reset()
            resets_in = round(to_reset if to_reset is not None and to_reset > 0 else seconds)
            left = f"{'?' if remaining is None else remaining} calls left, resets in {resets_in} s"
        return f"waiting for Procore quota until {until:%H:%M:%S} ({left})"
