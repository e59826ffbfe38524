"""Clocks the detector evaluates against: wall time live, the stream's watermark in a replay.

Windows close on the clock, not on the next message: a quiet key's window still moves
on and its alert still resolves. In a replay the clock is the watermark (the largest
event time seen, minus the allowed lateness), so the detector sees exactly what a live
detector would have seen at that moment, however fast the file is read and however it
is cut into batches.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Protocol

from monitor.detect.windows import EPOCH


class Clock(Protocol):
    def now(self) -> datetime | None: ...


class WatermarkClock:
    """Max event time seen minus `lateness`; None until the first event.

    Events may arrive out of order by up to `lateness`; everything at or before the
    watermark is assumed to have arrived. `finish()` declares the end of the stream
    (the watermark jumps to the last event time).
    """

    def __init__(self, lateness: timedelta = timedelta(minutes=2)) -> None:
        if lateness < timedelta(0):
            raise ValueError("allowed lateness cannot be negative")
        self.lateness = lateness
        self._max: datetime | None = None
        self._finished = False

    def observe(self, event_time: datetime) -> None:
        if event_time.tzinfo is None:
            raise ValueError("naive event time; use timezone-aware UTC")
        if self._max is None or event_time > self._max:
            self._max = event_time

    def finish(self) -> None:
        self._finished = True

    @property
    def max_event_time(self) -> datetime | None:
        return self._max

    def now(self) -> datetime | None:
        if self._max is None:
            return None
        return self._max if self._finished else self._max - self.lateness


def tick_times(after: datetime | None, upto: datetime | None, interval_seconds: float) -> list[datetime]:
    """Tick instants aligned to multiples of `interval_seconds` since the epoch, in (after, upto].

    Aligned instants (not "every N seconds since we started") are what make a replay
    tick at the same event times whatever the batch size. With `after` None, only
    `upto`'s own tick is returned (a clock that just started does not back-fill ticks).
    """
    if upto is None:
        return []
    step = float(interval_seconds)
    last = math.floor((upto - EPOCH).total_seconds() / step)
    first = last if after is None else math.floor((after - EPOCH).total_seconds() / step) + 1
    return [EPOCH + timedelta(seconds=i * step) for i in range(first, last + 1)]
