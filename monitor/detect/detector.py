"""The detector: minute counts of every key in, `Signal`s out, with the baseline cached between ticks.

One tick is two small aggregate queries at most:

* the baseline as *hour blocks* per key (``GROUP BY key, hour``). Complete baseline
  hours do not change, so a `Detector` keeps them in memory and only asks for hours it
  has not seen (normally none, or the one hour that just slid into the baseline); the
  last day of blocks is re-read every `REFRESH_MINUTES` of clock time to pick up
  documents that arrived very late;
* the last few hours at *minute* resolution (the windows and the resolve positions).

Everything after that is numpy over all keys at once (`monitor.detect.spike.evaluate`).

Pure apart from its `Source` (numpy only): `monitor.detect.source.SqlSource` reads the
counts from the database, and `monitor.detect.runner` runs ticks under the detector lease.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

from monitor.detect.baseline import BaselineStats, baseline_stats
from monitor.detect.params import Params, span_bounds
from monitor.detect.signals import Signal
from monitor.detect.spike import Evidence, evaluate, to_signals
from monitor.detect.windows import Rows, to_minute
from monitor.store.keys import FEED, RowKey

if TYPE_CHECKING:  # a type only: this module reads plain values, not the settings loader
    from monitor.config import Settings

log = logging.getLogger(__name__)

REFRESH_MINUTES = 6 * 60  # re-read the last day of baseline blocks this often (late data)
RECHECK_MINUTES = 30  # minute buckets younger than this are re-read every tick (late documents)
LEASE_NAME = "detector.lease"
ADVISORY_KEY = 0x66696E73656E74  # "finsent"
_OWNER = f"{socket.gethostname()}:{os.getpid()}"


class Source(Protocol):
    def fetch(self, start: int, end: int, per: int) -> Rows: ...


class _Block:
    __slots__ = ("gidx", "tot", "neg", "live", "fetched_at")

    def __init__(self, gidx: np.ndarray, tot: np.ndarray, neg: np.ndarray, live: np.ndarray, fetched_at: int) -> None:
        self.gidx, self.tot, self.neg, self.live, self.fetched_at = gidx, tot, neg, live, fetched_at


class Detector:
    """Holds the baseline block cache between ticks; `tick` is deterministic in (counts, now)."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self._index: dict[RowKey, int] = {}
        self._keys: list[RowKey] = []
        self._blocks: dict[int, _Block] = {}
        self._minutes: dict[int, _Block] = {}
        self._last_refresh: int | None = None
        self.recheck_minutes = RECHECK_MINUTES
        self._version = 0  # bumps whenever the cached hour blocks change
        self._bcache: tuple[tuple[int, int, int, int], tuple[np.ndarray, ...], BaselineStats | None] | None = None
        # Recent minutes as key x minute matrices for the current hour's m0, filled column
        # by column: a column is rewritten only when its minute bucket was (re)loaded.
        self._rkey: tuple[int, int] | None = None
        self._rarr: np.ndarray | None = None  # (3, keys, columns): total, negative, live
        self._rsrc: dict[int, _Block] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Detector:
        return cls(Params.from_settings(settings.detect))

    def _gidx(self, rows: Rows) -> np.ndarray:
        local = np.empty(len(rows.keys), dtype=np.int64)
        for i, k in enumerate(rows.keys):
            g = self._index.get(k)
            if g is None:
                g = self._index[k] = len(self._keys)
                self._keys.append(k)
            local[i] = g
        return local[rows.key_idx] if len(rows.key_idx) else np.zeros(0, dtype=np.int64)

    def _load(self, source: Source, buckets: list[int], per: int, into: dict[int, _Block], end: int) -> None:
        if not buckets:
            return
        lo, hi = min(buckets), max(buckets) + 1
        rows = source.fetch(lo * per, hi * per, per)
        if into is self._blocks:
            self._version += 1
        g = self._gidx(rows)
        order = np.argsort(rows.bucket, kind="stable")
        b_sorted = rows.bucket[order]
        for b in range(lo, hi):
            a, z = np.searchsorted(b_sorted, [b, b + 1])
            sel = order[a:z]
            into[b] = _Block(g[sel], rows.novel_total[sel], rows.novel_negative[sel], rows.live[sel], end)

    def _recent(self, m0: int, end: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        width = end - m0
        if self._rkey != (m0, g) or self._rarr is None or self._rarr.shape[2] < width:
            self._rkey = (m0, g)
            self._rarr = np.zeros((3, g, width + 60), dtype=np.int64)
            self._rsrc = {}
        arr = self._rarr
        for m in range(m0, end):
            blk = self._minutes[m]
            if self._rsrc.get(m) is blk:
                continue
            col = m - m0
            arr[:, :, col] = 0
            if len(blk.gidx):
                arr[0, blk.gidx, col] = blk.tot
                arr[1, blk.gidx, col] = blk.neg
                arr[2, blk.gidx, col] = blk.live
            self._rsrc[m] = blk
        for m in [m for m in self._rsrc if m >= end]:  # the clock went back: forget later columns
            arr[:, :, m - m0] = 0
            del self._rsrc[m]
        return arr[0, :, :width], arr[1, :, :width], arr[2, :, :width]

    def evidence(self, source: Source, end: int, final_until: int | None = None) -> Evidence:
        p = self.params
        h0, h1, m0 = span_bounds(end, p)
        for h in [h for h in self._blocks if h < h0 or h >= h1]:
            del self._blocks[h]
        if self._last_refresh is None or end - self._last_refresh >= REFRESH_MINUTES or end < self._last_refresh:
            for h in [h for h in self._blocks if h >= h1 - 24]:
                del self._blocks[h]
            self._minutes.clear()
            self._last_refresh = end
        self._load(source, [h for h in range(h0, h1) if h not in self._blocks], 60, self._blocks, end)
        # A minute bucket is final once it is `recheck_minutes` older than the tick that
        # read it; younger ones are read again (late documents).
        for m in [m for m in self._minutes if m < m0 or m >= self._minutes[m].fetched_at - self.recheck_minutes]:
            del self._minutes[m]
        missing = [m for m in range(m0, end) if m not in self._minutes]
        if missing and final_until is not None and self.recheck_minutes == 0 and final_until > end:
            # Everything before `final_until` is complete (a replay's watermark): read ahead.
            hi = min(final_until, end + 24 * 60)
            self._load(source, [*missing, hi - 1], 1, self._minutes, hi)
        else:
            self._load(source, missing, 1, self._minutes, end)

        g = len(self._keys)
        nb = h1 - h0
        bkey = (h0, h1, g, self._version)
        if self._bcache is not None and self._bcache[0] == bkey:
            block_tot, block_neg, block_live = self._bcache[1]
        else:
            block_tot, block_neg, block_live = _dense(self._blocks, h0, h1, g)
            self._bcache = (bkey, (block_tot, block_neg, block_live), None)
        rec_tot, rec_neg, rec_live = self._recent(m0, end, g)

        all_g = self._index.get(FEED)
        if all_g is not None:
            p_tot, p_neg, p_live = block_tot[all_g], block_neg[all_g], block_live[all_g]
            p_rlive = rec_live[all_g] > 0
        else:  # a database without the feed-wide row: pool the topics
            topics = np.array([k[0] == "topic" for k in self._keys], dtype=bool)
            p_tot, p_neg = block_tot[topics].sum(axis=0), block_neg[topics].sum(axis=0)
            p_live = block_live[topics].max(axis=0) if topics.any() else np.zeros(nb, dtype=np.int64)
            p_rlive = rec_live[topics].sum(axis=0) > 0

        bcache = self._bcache
        assert bcache is not None
        if bcache[2] is None:
            bcache = self._bcache = (bcache[0], bcache[1], baseline_stats(block_neg, block_tot, p_neg, p_tot, p))
        base = bcache[2]
        assert base is not None
        present = (block_live.sum(axis=1) > 0) | (rec_live.sum(axis=1) > 0)
        active = [i for i in np.nonzero(present)[0].tolist() if self._keys[i][0] in ("topic", "entity")]
        active.sort(key=lambda i: self._keys[i])
        idx = np.asarray(active, dtype=np.int64)
        return Evidence(
            base=base.take(idx),
            keys=[self._keys[i] for i in active],
            end=end,
            block_tot=block_tot[idx],
            block_neg=block_neg[idx],
            recent_tot=rec_tot[idx],
            recent_neg=rec_neg[idx],
            parent_block_tot=p_tot,
            parent_block_neg=p_neg,
            parent_block_live=p_live,
            parent_recent_live=p_rlive.astype(np.int64),
        )

    def tick(self, source: Source, now: datetime, final_until: datetime | None = None) -> list[Signal]:
        """Signals for every topic and entity key with data in the baseline or recent span.

        `final_until` (a replay's watermark) says minutes before it are complete, so they
        can be read ahead in one query instead of one per tick.
        """
        end = to_minute(now)
        with self._lock:
            ev = self.evidence(source, end, to_minute(final_until) if final_until is not None else None)
        if not ev.keys:
            return []
        return to_signals(evaluate(ev, self.params), now)


def _dense(blocks: dict[int, _Block], lo: int, hi: int, g: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Key x bucket matrices (total, negative, live) of cached buckets [lo, hi)."""
    width = hi - lo
    parts = [(blocks[b], b - lo) for b in range(lo, hi) if len(blocks[b].gidx)]
    if not parts:
        z = np.zeros((g, width), dtype=np.int64)
        return z, z.copy(), z.copy()
    flat = np.concatenate([blk.gidx * width + col for blk, col in parts])
    out = []
    for attr in ("tot", "neg", "live"):
        vals = np.concatenate([getattr(blk, attr) for blk, _ in parts])
        out.append(np.bincount(flat, weights=vals, minlength=g * width).astype(np.int64).reshape(g, width))
    return out[0], out[1], out[2]
