"""A clock you move by hand.

The sandbox reads time only through the ``clock`` callable given to ``create_app``, so token
expiry, quota windows and record timestamps all follow it. Tests pass a ``ManualClock`` and call
``advance`` instead of sleeping; a client under test can share the same clock for its pacing.
Whoever waits for a moment of this clock (the webhook delivery worker) asks to be told when it
moves (``on_advance``), since no real wait ever reaches it.
"""

from __future__ import annotations

from collections.abc import Callable


class ManualClock:
    """A callable returning Unix seconds that only moves when told to."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.now = start
        self._listeners: list[Callable[[], None]] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for listener in self._listeners:
            listener()

    def on_advance(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
