"""Test doubles and reference implementations that only tests use.

- `MinuteCounts`: an in-memory twin of the `minute_counts` table (the columns detection
  reads, with the store's semantics), a `Source` for `monitor.detect.detector.Detector`.
- `first_duplicates`: the in-memory reference of the store's near-duplicate lookup, and
  `jaccard`, the exact similarity MinHash estimates.
- `schedule`: the detector on an apscheduler job with an injected clock.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.detect.clock import Clock
from monitor.detect.runner import tick
from monitor.detect.signals import Signal
from monitor.detect.windows import Rows
from monitor.enrich.novelty import bands, normalize, shingles
from monitor.store.keys import RowKey, row_keys

log = logging.getLogger(__name__)


class MinuteCounts:
    """In-memory minute_counts (only the columns detection reads), with the table's semantics."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        self._arrays: tuple[list[RowKey], np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(
        self,
        kind: str,
        value: str,
        minute: int,
        total: int,
        novel_total: int,
        novel_negative: int,
        negative: int | None = None,
    ) -> None:
        """`negative` counts copies too; by default the copies are taken as not negative."""
        c = self._cells[(kind, value, int(minute))]
        c[0] += total
        c[1] += novel_total
        c[2] += novel_negative
        c[3] += novel_negative if negative is None else negative
        self._arrays = None

    def add_document(
        self, minute: int, topic: str | None, entities: Iterable[str], sentiment: str, novel: bool = True
    ) -> None:
        """Bump the buckets one classified document touches, like the store does."""
        neg = int(sentiment == "negative")
        for kind, value in row_keys(topic, entities):
            self.add(kind, value, minute, 1, int(novel), neg * int(novel), neg)

    def __len__(self) -> int:
        return len(self._cells)

    def cells(self) -> dict[tuple[str, str, int], tuple[int, int, int, int]]:
        """(kind, value, minute) -> (total, novel_total, novel_negative, negative)."""
        return {k: (v[0], v[1], v[2], v[3]) for k, v in self._cells.items()}

    def _build(self) -> tuple[list[RowKey], np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            items = sorted((m, k, v) for (k0, k1, m), v in self._cells.items() for k in [(k0, k1)] if v[0] > 0)
            keys: list[RowKey] = sorted({k for _, k, _ in items})
            index = {k: i for i, k in enumerate(keys)}
            minute = np.fromiter((m for m, _, _ in items), dtype=np.int64, count=len(items))
            kidx = np.fromiter((index[k] for _, k, _ in items), dtype=np.int64, count=len(items))
            vals = np.asarray([v for _, _, v in items], dtype=np.int64).reshape(-1, 4)
            self._arrays = (keys, minute, kidx, vals)
        return self._arrays

    def fetch(self, start: int, end: int, per: int = 1) -> Rows:
        """Rows with minute in [start, end), grouped into buckets of `per` minutes (1 or 60)."""
        keys, minute, kidx, vals = self._build()
        a, z = np.searchsorted(minute, [start, end])
        if z <= a:
            return Rows.empty()
        m, k = minute[a:z], kidx[a:z]
        bucket = m // per
        nb = int(bucket.max() - bucket.min() + 1)
        code = k * nb + (bucket - bucket.min())
        uniq, inv = np.unique(code, return_inverse=True)
        sums = np.zeros((len(uniq), 4), dtype=np.int64)
        v = vals[a:z]
        np.add.at(sums, inv, np.stack([v[:, 1], v[:, 2], v[:, 0], v[:, 3]], axis=1))
        uk, ub = uniq // nb, uniq % nb + bucket.min()
        used = np.unique(uk)
        remap = np.full(len(keys), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return Rows([keys[i] for i in used.tolist()], remap[uk], ub, sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3])


def first_duplicates(texts: Sequence[str], threshold: float = 0.7) -> list[int | None]:
    """In-memory reference of what the store does: index of the first earlier near-duplicate.

    The store's table lookup must agree with it on the same sequence.
    """
    seen: dict[str, int] = {}
    out: list[int | None] = []
    for i, t in enumerate(texts):
        keys = bands(t, threshold)
        hit = min((seen[k] for k in keys if k in seen), default=None)
        out.append(hit)
        for k in keys:
            seen.setdefault(k, i)
    return out


def schedule(
    scheduler: Any,
    engine: Engine,
    settings: Settings,
    clock: Clock,
    on_signals: Callable[[list[Signal], datetime], None],
    *,
    job_id: str = "detect",
) -> Any:
    """Register the detector on an apscheduler (3.x) BackgroundScheduler; returns the Job.

    Every `detect.interval_seconds` it ticks at `clock.now()` and calls
    ``on_signals(signals, now)`` (the alert lifecycle, e.g. `monitor.alerting.service.apply_signals`),
    every tick, also with ``[]`` when another daemon holds the lease, so group waits and
    repeats still flush on the clock. Runs one at a time and coalesces missed runs.
    """

    def _job() -> None:
        now = clock.now()
        if now is None:
            return
        try:
            signals = tick(engine, settings, now)
        except Exception:
            log.exception("detector tick at %s failed; the next tick retries", now.isoformat())
            return
        on_signals(signals, now)

    return scheduler.add_job(
        _job,
        "interval",
        seconds=settings.detect.interval_seconds,
        id=job_id,
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(settings.detect.interval_seconds)),
    )


def jaccard(a: str, b: str) -> float:
    """Exact Jaccard similarity of two texts' shingle sets (the reference the MinHash estimates)."""
    sa, sb = shingles(normalize(a)), shingles(normalize(b))
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)
