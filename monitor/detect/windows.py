"""Rolling windows over minute buckets, in event time. Pure: plain values and numpy arrays.

Time is an integer *epoch minute* (minutes since 1970-01-01 UTC) inside the detector;
a bucket ``m`` holds documents published in ``[m, m + 1)``. A window "ending at" ``e``
covers the complete minutes ``[e - width, e)``, where ``e`` is the clock's time floored to
the minute: the minute that is still filling is never looked at, so a tick's answer does
not depend on how much of the current minute has arrived yet (what makes a replay give
the same answer at any speed).

`MinuteCounts` is an in-memory twin of the `minute_counts` table for tests, simulations
and benchmarks; `rolling_sums` turns a dense key x minute matrix into the sums of the
windows ending at each of the last few minutes (the firing test uses the last one, the
resolve test all of them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)

# Key of a row in minute_counts: (key_kind, key_value), kind "topic" | "entity" | "all".
RowKey = tuple[str, str]
ALL: RowKey = ("all", "all")


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

    `bucket` is an epoch minute (minute resolution) or an epoch hour (hour blocks);
    `live` is how many minutes of that bucket had any volume (1 or 0 for minutes).
    """

    keys: list[RowKey]
    key_idx: np.ndarray
    bucket: np.ndarray
    novel_total: np.ndarray
    novel_negative: np.ndarray
    live: np.ndarray

    @staticmethod
    def empty() -> Rows:
        z = np.zeros(0, dtype=np.int64)
        return Rows([], z, z, z, z, z)


class MinuteCounts:
    """In-memory minute_counts (only the columns detection reads), with the table's semantics."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        self._arrays: tuple[list[RowKey], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, kind: str, value: str, minute: int, total: int, novel_total: int, novel_negative: int) -> None:
        c = self._cells[(kind, value, int(minute))]
        c[0] += total
        c[1] += novel_total
        c[2] += novel_negative
        self._arrays = None

    def add_document(
        self, minute: int, topic: str | None, entities: Iterable[str], sentiment: str, novel: bool = True
    ) -> None:
        """Bump the buckets one classified document touches, like the store does."""
        keys: list[RowKey] = [ALL]
        if topic:
            keys.append(("topic", topic))
        keys += [("entity", e) for e in dict.fromkeys(entities)]
        neg = int(sentiment == "negative")
        for kind, value in keys:
            self.add(kind, value, minute, 1, int(novel), neg * int(novel))

    def __len__(self) -> int:
        return len(self._cells)

    def cells(self) -> dict[tuple[str, str, int], tuple[int, int, int]]:
        """(kind, value, minute) -> (total, novel_total, novel_negative)."""
        return {k: (v[0], v[1], v[2]) for k, v in self._cells.items()}

    def _build(self) -> tuple[list[RowKey], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            items = sorted((m, k, v) for (k0, k1, m), v in self._cells.items() for k in [(k0, k1)] if v[0] > 0)
            keys: list[RowKey] = sorted({k for _, k, _ in items})
            index = {k: i for i, k in enumerate(keys)}
            minute = np.fromiter((m for m, _, _ in items), dtype=np.int64, count=len(items))
            kidx = np.fromiter((index[k] for _, k, _ in items), dtype=np.int64, count=len(items))
            vals = np.asarray([v for _, _, v in items], dtype=np.int64).reshape(-1, 3)
            self._arrays = (keys, minute, kidx, vals[:, 0], vals[:, 1], vals[:, 2])
        return self._arrays

    def fetch(self, start: int, end: int, per: int = 1) -> Rows:
        """Rows with minute in [start, end), grouped into buckets of `per` minutes (1 or 60)."""
        keys, minute, kidx, _tot, ntot, nneg = self._build()
        a, z = np.searchsorted(minute, [start, end])
        if z <= a:
            return Rows.empty()
        m, k = minute[a:z], kidx[a:z]
        bucket = m // per
        nb = int(bucket.max() - bucket.min() + 1)
        code = k * nb + (bucket - bucket.min())
        uniq, inv = np.unique(code, return_inverse=True)
        sums = np.zeros((len(uniq), 3), dtype=np.int64)
        np.add.at(sums, inv, np.stack([ntot[a:z], nneg[a:z], np.ones(z - a, dtype=np.int64)], axis=1))
        uk, ub = uniq // nb, uniq % nb + bucket.min()
        used = np.unique(uk)
        remap = np.full(len(keys), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return Rows([keys[i] for i in used.tolist()], remap[uk], ub, sums[:, 0], sums[:, 1], sums[:, 2])


def rows_from_records(records: Iterable[Sequence]) -> Rows:
    """(key, bucket, novel_total, novel_negative, live) records to `Rows`."""
    keys: list[RowKey] = []
    index: dict[RowKey, int] = {}
    ki, bk, nt, nn, lv = [], [], [], [], []
    for key, bucket, ntot, nneg, live in records:
        key = (key[0], key[1])
        i = index.get(key)
        if i is None:
            i = index[key] = len(keys)
            keys.append(key)
        ki.append(i)
        bk.append(int(bucket))
        nt.append(int(ntot or 0))
        nn.append(int(nneg or 0))
        lv.append(int(live or 0))
    if not keys:
        return Rows.empty()
    return Rows(
        keys,
        np.asarray(ki, dtype=np.int64),
        np.asarray(bk, dtype=np.int64),
        np.asarray(nt, dtype=np.int64),
        np.asarray(nn, dtype=np.int64),
        np.asarray(lv, dtype=np.int64),
    )
