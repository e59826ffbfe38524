"""Rolling windows over minute buckets, in event time. Pure: plain values and numpy arrays.

Time is an integer *epoch minute* (minutes since 1970-01-01 UTC) inside the detector;
a bucket ``m`` holds documents published in ``[m, m + 1)``. A window "ending at" ``e``
covers the complete minutes ``[e - width, e)``, where ``e`` is the clock's time floored to
the minute: the minute that is still filling is never looked at, so a tick's answer does
not depend on how much of the current minute has arrived yet (what makes a replay give
the same answer at any speed).

`rolling_sums` is the reference for window sums over a dense key x minute matrix (the
detector keeps its sums incrementally; tests compare the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.store.keys import RowKey

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def _check_aware(dt: datetime) -> None:
    if dt.tzinfo is None:
        raise ValueError("naive datetime; the detector works in timezone-aware UTC only")


def to_minute(dt: datetime) -> int:
    """Epoch minute of the bucket `dt` falls in."""
    _check_aware(dt)
    return int((dt - EPOCH) // MINUTE)


def from_minute(m: int) -> datetime:
    return EPOCH + timedelta(minutes=int(m))


def floor_minute(dt: datetime) -> datetime:
    return from_minute(to_minute(dt))


def rolling_sums(dense: np.ndarray, width: int, positions: int) -> np.ndarray:
    """Sums of the windows of `width` columns ending at each of the last `positions` column ends.

    `dense` is (keys, T). Column ``positions - 1`` of the result is the window ending at
    T (the newest); column 0 the one ending at ``T - positions + 1``. Needs
    ``T >= width + positions - 1``.
    """
    k, t = dense.shape
    if t < width + positions - 1:
        raise ValueError(f"need {width + positions - 1} minutes of data for {positions} windows of {width}, got {t}")
    cs = np.zeros((k, t + 1), dtype=np.int64)
    np.cumsum(dense, axis=1, out=cs[:, 1:])
    ends = np.arange(t - positions + 1, t + 1)
    return cs[:, ends] - cs[:, ends - width]


def densify(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A dense matrix from (row, col, value) triples; repeated cells add up."""
    out = np.zeros(shape, dtype=np.int64)
    if len(rows):
        np.add.at(out, (rows, cols), values)
    return out


@dataclass(frozen=True, slots=True)
class Rows:
    """Aggregated minute_counts rows: what a detector source returns for a time range.

    `bucket` is an epoch minute (minute resolution) or an epoch hour (hour blocks).
    """

    keys: list[RowKey]
    key_idx: np.ndarray
    bucket: np.ndarray
    novel_total: np.ndarray
    novel_negative: np.ndarray
    total: np.ndarray  # every document, copies included (copies = total - novel_total)
    negative: np.ndarray

    @staticmethod
    def empty() -> Rows:
        z = np.zeros(0, dtype=np.int64)
        return Rows([], z, z, z, z, z, z)
