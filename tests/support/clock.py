"""A clock the test moves by hand: sleeping advances it instead of waiting."""

from __future__ import annotations

import threading


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._guard = threading.Lock()
        self.slept: list[float] = []

    def time(self) -> float:
        with self._guard:
            return self._now

    def monotonic(self) -> float:
        with self._guard:
            return self._mono

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        with self._guard:
            self._now += seconds
            self._mono += seconds
