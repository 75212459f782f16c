"""Time, injected: the engine asks a clock instead of the `time` module, so tests can
run lease expiry, backoff and takeover in microseconds without sleeping."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock"]


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (wall clock: lease expiry is compared across hosts)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (deadlines on this host)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()
