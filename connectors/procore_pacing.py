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
    ) -> None:
        self._stats = stats
        self._low_water = low_water
        self._sleep = sleep
        self._clock = clock
        self._on_wait = on_wait

    def observe(self, headers: Mapping[str, str]) -> None:
        quota = QuotaStatus.from_headers(headers)
        if quota is not None:
            self._stats.quota = quota

    def before_request(self) -> None:
        delay = self.delay()
        if delay > 0:
            self.announce(delay)
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

    def announce(self, seconds: float) -> None:
        """Count a quota wait and, when it is long enough to notice, log it and tell on_wait.

        The caller does the sleeping (directly, or tenacity for a 429).
        """
        self._stats.waited_s += seconds
        if seconds < ANNOUNCE_WAIT_S:
            return
        until = datetime.fromtimestamp(self._clock() + seconds, timezone.utc)
        message = redact(self._describe(until, seconds))
        log.info(message)
        if self._on_wait is not None:
            self._on_wait(until, message)

    def _describe(self, until: datetime, seconds: float) -> str:
        remaining = self._stats.quota.remaining
        to_reset = self.seconds_to_reset()
        resets_in = round(to_reset if to_reset is not None and to_reset > 0 else seconds)
        calls_left = "?" if remaining is None else str(remaining)
        return (
            f"waiting for Procore quota until {until:%H:%M:%S} "
            f"({calls_left} calls left, resets in {resets_in} s)"
        )
