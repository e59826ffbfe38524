"""The detector: minute counts of every key in, `Signal`s out, with its state kept between ticks.

What a tick costs follows the data, not the number of keys or minutes:

* **Baseline hours** live in a ring of hour columns (keys x ``baseline_days * 24``). When
  the clock crosses an hour, one column is replaced: built from the minute buckets the
  detector already holds when they are final, else read with one ``GROUP BY key, hour``
  query. The population priors (empirical Bayes across companies and across topics) are
  recomputed from the ring's per-key totals when it changes.
* **Window sums** for every horizon (and each horizon stretched for the resolve test) are
  kept per key and updated incrementally: a minute bucket is added when it enters a
  window and subtracted when it leaves; a bucket re-read with late documents replaces
  its old contribution.
* **Idle keys are evicted**: at most every ``REFRESH_MINUTES``, keys with no count in the
  baseline hours, the windows or the minute buckets held (and not watched) are dropped
  from the index when they are a quarter or more of it. Such a key contributes nothing to
  any sum or prior; only its first-seen minute is remembered (in a bounded map), so a
  later item for it gives the same verdicts as if it had been kept. Memory follows the
  keys active in the baseline span, not every cashtag ever seen.
* **Keys evaluated** at a tick are those with a new story or copy in the last
  ``fresh_minutes`` and those whose last verdict was not calm (an open alert resolves
  only on a calm verdict). Every other key can neither start firing (firing needs fresh
  evidence) nor change an open alert, so the signals that matter are exactly those of a
  tick over all keys. The first tick of a detector, and one after the clock went back,
  evaluates every key.

Pure apart from its `Source` (numpy only): `monitor.detect.source.SqlSource` reads the
counts from the database, and `monitor.detect.runner` runs ticks under the detector lease.
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

from monitor.detect.baseline import Prior, population_prior
from monitor.detect.params import Params, span_bounds
from monitor.detect.signals import Signal
from monitor.detect.spike import Evidence, copy_evidence, evaluate, key_baselines, to_signals
from monitor.detect.windows import Rows, to_minute
from monitor.store.keys import FEED, RowKey

if TYPE_CHECKING:  # a type only: this module reads plain values, not the settings loader
    from monitor.config import Settings

log = logging.getLogger(__name__)

REFRESH_MINUTES = 6 * 60  # re-read the last day of baseline hours this often (late data)
RECHECK_MINUTES = 30  # minute buckets younger than this are re-read every tick (late documents)
EVICT_MIN_KEYS = 64  # idle keys are evicted when at least this many and a quarter of all
GONE_FIRST_MAX = 200_000  # evicted keys whose first minute is remembered
NF = 4  # fields kept per bucket: novel_total, novel_negative, total, negative
_NEVER = np.iinfo(np.int64).max


def _widen(a: np.ndarray, axis: int, extra: int, fill: int = 0) -> np.ndarray:
    """`a` with `extra` more rows along `axis`, set to `fill`. Zero-filled growth comes from
    `np.zeros`, whose pages the system hands over already zeroed (np.pad writes every
    element: at 10,000 keys the baseline ring is tens of megabytes)."""
    shape = list(a.shape)
    shape[axis] += extra
    out = np.zeros(shape, dtype=a.dtype) if fill == 0 else np.full(shape, fill, dtype=a.dtype)
    out[tuple(slice(0, n) for n in a.shape)] = a
    return out


class Source(Protocol):
    def fetch(self, start: int, end: int, per: int) -> Rows: ...


class _Block:
    """One bucket's rows: global key indices and their (NF) counts."""

    __slots__ = ("gidx", "vals", "fetched_at")

    def __init__(self, gidx: np.ndarray, vals: np.ndarray, fetched_at: int) -> None:
        self.gidx, self.vals, self.fetched_at = gidx, vals, fetched_at


class Detector:
    """Holds the baseline ring, the minute buckets and the window sums between ticks;
    `tick` is deterministic in (counts, now)."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.recheck_minutes = RECHECK_MINUTES
        self.evict_idle = True
        self.evicted = 0  # keys evicted so far (for the metrics and tests)
        self._lock = threading.Lock()
        self._index: dict[RowKey, int] = {}
        self._keys: list[RowKey] = []
        self._gone_first: dict[RowKey, int] = {}
        self._reset()

    def _reset(self) -> None:
        p = self.params
        nb = p.baseline_hours
        g = len(self._keys)
        self._nb = nb
        self._ring = np.zeros((NF, g, nb), dtype=np.int64)  # the FIELDS per key and hour
        self._ring_hour = np.full(nb, -1, dtype=np.int64)  # which hour each column holds
        self._ring_sum = np.zeros((NF, g), dtype=np.int64)
        self._priors: dict[str, Prior] | None = None
        self._version = 0  # bumps whenever the ring changes (the baselines and priors with it)
        self._bcache: dict[int, tuple[int, int, int, int]] = {}  # key -> (version, neg, total, excluded)
        self._minutes: dict[int, _Block] = {}
        self._nonempty: list[int] = []  # sorted minutes whose block has rows
        # Every width's window sums in one array (width x key x field), so a tick's entering
        # and leaving buckets go in with one scatter; `_sums[w]` are views into it.
        self._widths = list(p.widths)
        self._stack = np.zeros((len(self._widths), g, NF), dtype=np.int64)
        self._sums = self._views()
        # Widths a watched key's verdict depends on: the stretched windows of the calm test, and freshness.
        self._calm_widths = {w + p.positions - 1 for w in p.windows} | {p.fresh_minutes}
        self._first = np.full(g, _NEVER, dtype=np.int64)  # first minute seen while the key was absent
        self._gone_first.clear()
        self._dirty = np.zeros(g, dtype=bool)  # window sums changed since the key was last evaluated
        self._seen_version = np.full(g, -1, dtype=np.int64)  # ring version at the key's last evaluation
        self._end: int | None = None
        self._last_refresh: int | None = None
        self._last_evict: int | None = None
        self._watch: set[int] = set()
        self._full = True  # the next tick evaluates every key
        self._full_tick = False
        self._lo = self._hi = 0  # the minute buckets held are exactly [_lo, _hi)

    @classmethod
    def from_settings(cls, settings: Settings) -> Detector:
        return cls(Params.from_settings(settings.detect))

    # -- keys -------------------------------------------------------------------------------

    def _gidx(self, rows: Rows) -> np.ndarray:
        local = np.empty(len(rows.keys), dtype=np.int64)
        back: list[tuple[int, int]] = []
        for i, k in enumerate(rows.keys):
            g = self._index.get(k)
            if g is None:
                g = self._index[k] = len(self._keys)
                self._keys.append(k)
                if k in self._gone_first:
                    back.append((g, self._gone_first.pop(k)))
            local[i] = g
        self._grow()
        for g, first in back:
            self._first[g] = first
        return local[rows.key_idx] if len(rows.key_idx) else np.zeros(0, dtype=np.int64)

    def _grow(self) -> None:
        g = len(self._keys)
        have = self._ring.shape[1]
        if g <= have:
            return
        # Amortised growth, with room to spare on the first: a cold start's minute read
        # brings a few keys its hour read did not, and a second growth copies the ring.
        extra = max(g - have + g // 8, have // 2, 64)
        self._ring = _widen(self._ring, 1, extra)
        self._ring_sum = _widen(self._ring_sum, 1, extra)
        self._first = _widen(self._first, 0, extra, _NEVER)
        self._dirty = _widen(self._dirty, 0, extra)
        self._seen_version = _widen(self._seen_version, 0, extra, -1)
        self._stack = _widen(self._stack, 1, extra)
        self._sums = self._views()

    def _evict_idle(self, end: int) -> None:
        """Drop keys that hold nothing anywhere (see the module docstring)."""
        if self._last_evict is not None and end - self._last_evict < REFRESH_MINUTES:
            return
        self._last_evict = end
        g = len(self._keys)
        if g == 0:
            return
        used = (self._ring_sum[:, :g] != 0).any(axis=0)
        for s in self._sums.values():
            used |= (s[:g] != 0).any(axis=1)
        held = [b.gidx for b in self._minutes.values() if len(b.gidx)]
        if held:
            used[np.unique(np.concatenate(held))] = True
        if self._watch:
            used[np.fromiter(self._watch, dtype=np.int64)] = True
        idle = g - int(used.sum())
        if not self.evict_idle or idle < max(EVICT_MIN_KEYS, g // 4):  # not worth a compaction
            return
        keep = np.nonzero(used)[0]
        # An evicted key's first minute is remembered (a few bytes, not its ring row), so
        # it is as warm when it returns as if it had been kept.
        for i in np.nonzero(~used)[0].tolist():
            if self._first[i] != _NEVER:
                self._gone_first[self._keys[i]] = int(self._first[i])
        while len(self._gone_first) > GONE_FIRST_MAX:  # the oldest evictions go first
            del self._gone_first[next(iter(self._gone_first))]
        remap = np.full(g, -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep), dtype=np.int64)
        self._keys = [self._keys[i] for i in keep.tolist()]
        self._index = {k: i for i, k in enumerate(self._keys)}
        self._ring = self._ring[:, keep, :]
        self._ring_sum = self._ring_sum[:, keep]
        self._first = self._first[keep]
        self._dirty = self._dirty[keep]
        self._seen_version = self._seen_version[keep]
        self._stack = self._stack[:, keep]
        self._sums = self._views()
        for blk in self._minutes.values():
            if len(blk.gidx):
                blk.gidx = remap[blk.gidx]
        self._bcache = {int(remap[k]): v for k, v in self._bcache.items() if k < g and remap[k] >= 0}
        self._watch = {int(remap[i]) for i in self._watch}
        self._priors = None
        self.evicted += idle
        log.debug("detector: evicted %d idle keys, %d kept", idle, len(keep))

    # -- loading ------------------------------------------------------------------------------

    def _fetch(self, source: Source, lo: int, hi: int, per: int, fetched_at: int) -> dict[int, _Block]:
        """Buckets [lo, hi) of `per` minutes, every bucket present (empty ones too)."""
        rows = source.fetch(lo * per, hi * per, per)
        g = self._gidx(rows)
        vals = np.stack([rows.novel_total, rows.novel_negative, rows.total, rows.negative], axis=1)
        order = np.argsort(rows.bucket, kind="stable")
        g, vals = g[order], vals[order]
        cuts = np.searchsorted(rows.bucket[order], np.arange(lo, hi + 1)).tolist()
        return {
            b: _Block(g[a:z], vals[a:z], fetched_at) for b, a, z in zip(range(lo, hi), cuts, cuts[1:], strict=False)
        }

    def _put_minute(self, m: int, blk: _Block) -> _Block | None:
        old = self._minutes.get(m)
        self._minutes[m] = blk
        had = old is not None and len(old.gidx) > 0
        has = len(blk.gidx) > 0
        if has and not had:
            bisect.insort(self._nonempty, m)
        elif had and not has:
            i = bisect.bisect_left(self._nonempty, m)
            del self._nonempty[i]
        return old

    def _drop_minutes_before(self, m0: int) -> None:
        for m in range(self._lo, min(m0, self._hi)):
            self._minutes.pop(m, None)
        self._lo = max(self._lo, min(m0, self._hi))
        i = bisect.bisect_left(self._nonempty, m0)
        del self._nonempty[:i]

    def _blocks_in(self, lo: int, hi: int) -> list[tuple[int, _Block]]:
        a = bisect.bisect_left(self._nonempty, lo)
        z = bisect.bisect_left(self._nonempty, hi)
        return [(m, self._minutes[m]) for m in self._nonempty[a:z]]

    # -- window sums --------------------------------------------------------------------------

    def _apply(self, blocks: list[tuple[int, _Block]], widths: list[int], sign: int) -> None:
        if not blocks or not widths:
            return
        gidx = np.concatenate([b.gidx for _, b in blocks])
        vals = np.concatenate([b.vals for _, b in blocks]) * sign
        if any(w in self._calm_widths for w in widths):
            self._dirty[gidx] = True
        for w in widths:
            np.add.at(self._sums[w], gidx, vals)

    def _note_first(self, blocks: list[tuple[int, _Block]]) -> None:
        """Remember the first minute of keys that were absent from the ring and the windows."""
        widest = self._sums[max(self._sums)]
        for m, blk in blocks:
            absent = (self._ring_sum[0, blk.gidx] == 0) & (widest[blk.gidx, 2] == 0)
            sel = blk.gidx[absent & (self._first[blk.gidx] > m)]
            self._first[sel] = m

    def _views(self) -> dict[int, np.ndarray]:
        return {w: self._stack[i] for i, w in enumerate(self._widths)}

    def _advance(self, end: int) -> None:
        """Move every window's sums from `self._end` to `end` (forward only): the buckets
        entering and leaving each width, all widths in one scatter."""
        old = self._end
        assert old is not None and end >= old
        if end == old:
            return
        entering = self._blocks_in(old, end)
        self._note_first(entering)
        moves: list[tuple[int, _Block, int]] = []  # (width index, bucket, +1 entering / -1 leaving)
        calm: list[np.ndarray] = []
        for i, w in enumerate(self._widths):
            n = len(moves)
            moves += [(i, b, 1) for m, b in entering if m >= end - w and len(b.gidx)]
            moves += [(i, b, -1) for _, b in self._blocks_in(old - w, min(old, end - w)) if len(b.gidx)]
            if w in self._calm_widths:
                calm += [b.gidx for _, b, _ in moves[n:]]
        if moves:
            sizes = [len(b.gidx) for _, b, _ in moves]
            gidx = np.concatenate([b.gidx for _, b, _ in moves])
            wi = np.repeat([i for i, _, _ in moves], sizes)
            vals = np.concatenate([b.vals for _, b, _ in moves]) * np.repeat([s for _, _, s in moves], sizes)[:, None]
            np.add.at(self._stack, (wi, gidx), vals)
        if calm:
            self._dirty[np.concatenate(calm)] = True
        self._end = end

    def _rebuild(self, end: int) -> None:
        for w in self._sums:
            self._sums[w][:] = 0
        self._first[:] = _NEVER
        self._gone_first.clear()
        blocks = self._blocks_in(end - max(self._sums), end)
        if blocks:
            # All at once: what adding the buckets one by one, oldest first, would give.
            gidx = np.concatenate([b.gidx for _, b in blocks])
            vals = np.concatenate([b.vals for _, b in blocks])
            minute = np.repeat([m for m, _ in blocks], [len(b.gidx) for _, b in blocks])
            # A key absent from the ring was first seen at its oldest bucket in the windows.
            absent = self._ring_sum[0, gidx] == 0
            np.minimum.at(self._first, gidx[absent], minute[absent])
            for w in self._sums:
                inside = minute >= end - w
                if w in self._calm_widths:
                    self._dirty[gidx[inside]] = True
                np.add.at(self._sums[w], gidx[inside], vals[inside])
        self._end = end
        self._full = True

    def _replace_minute(self, m: int, new: _Block) -> None:
        """Put a re-read bucket in place, swapping its contribution to the current windows."""
        old = self._put_minute(m, new)
        if self._end is None:
            return
        inside = [w for w in self._sums if self._end - w <= m < self._end]
        if old is not None and len(old.gidx):
            self._apply([(m, old)], inside, -1)
        if len(new.gidx):
            self._note_first([(m, new)])
            self._apply([(m, new)], inside, +1)

    # -- baseline ring ------------------------------------------------------------------------

    def _set_hour(self, h: int, blk: _Block) -> None:
        col = h % self._nb
        old_h = int(self._ring_hour[col])
        if old_h != -1:
            self._ring_sum -= self._ring[:, :, col]
        self._ring[:, :, col] = 0
        if len(blk.gidx):
            for f in range(NF):
                np.add.at(self._ring[f, :, col], blk.gidx, blk.vals[:, f])
        self._ring_sum += self._ring[:, :, col]
        self._ring_hour[col] = h
        self._priors = None
        self._version += 1

    def _hour_from_minutes(self, h: int) -> _Block | None:
        """An hour's block from minute buckets already held, if all 60 are there and final."""
        ms = range(h * 60, h * 60 + 60)
        if any(m not in self._minutes or self._minutes[m].fetched_at - m < self.recheck_minutes for m in ms):
            return None
        parts = self._blocks_in(h * 60, h * 60 + 60)
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            return _Block(z, np.zeros((0, NF), dtype=np.int64), 0)
        gidx = np.concatenate([b.gidx for _, b in parts])
        vals = np.concatenate([b.vals for _, b in parts])
        u, inv = np.unique(gidx, return_inverse=True)
        agg = np.zeros((len(u), NF), dtype=np.int64)
        np.add.at(agg, inv, vals)
        return _Block(u, agg, 0)

    def _ensure_hours(self, source: Source, h0: int, h1: int, end: int) -> None:
        want = np.arange(h0, h1, dtype=np.int64)
        missing = want[self._ring_hour[want % self._nb] != want].tolist()
        fetch = []
        for h in missing:
            blk = self._hour_from_minutes(h)
            if blk is None:
                fetch.append(h)
            else:
                self._set_hour(h, blk)
        if fetch:
            got = self._fetch(source, min(fetch), max(fetch) + 1, 60, end)
            self._set_hours({h: got[h] for h in fetch})

    def _set_hours(self, blocks: dict[int, _Block]) -> None:
        """`_set_hour` for many hours at once (a cold start's week): one scatter into the
        ring instead of a strided column write per hour."""
        hours = np.fromiter(blocks, dtype=np.int64, count=len(blocks))
        cols = hours % self._nb
        if len(np.unique(cols)) != len(cols):  # two hours for one column: one at a time
            for h, blk in blocks.items():
                self._set_hour(h, blk)
            return
        held = cols[self._ring_hour[cols] != -1]
        if len(held):
            self._ring_sum -= self._ring[:, :, held].sum(axis=2)
        self._ring[:, :, cols] = 0
        parts = list(blocks.values())
        gidx = np.concatenate([b.gidx for b in parts])
        if len(gidx):
            vals = np.concatenate([b.vals for b in parts])
            at = np.repeat(cols, [len(b.gidx) for b in parts])
            # A block holds each key once (hour_counts' key, or summed minutes), so a plain
            # scatter is exact.
            self._ring[:, gidx, at] = vals.T
        self._ring_sum += self._ring[:, :, cols].sum(axis=2)
        self._ring_hour[cols] = hours
        self._priors = None
        self._version += 1

    def priors(self) -> dict[str, Prior]:
        if self._priors is None:
            g = len(self._keys)
            kinds = np.asarray([k[0] for k in self._keys]) if g else np.zeros(0, dtype=str)
            tot, neg = self._ring_sum[0, :g], self._ring_sum[1, :g]
            feed = self._index.get(FEED)
            fallback = float(neg[feed] / tot[feed]) if feed is not None and tot[feed] > 0 else 0.25
            self._priors = {
                kind: population_prior(neg[kinds == kind], tot[kinds == kind], self._nb, fallback, self.params)
                for kind in ("topic", "entity")
            }
        return self._priors

    # -- one tick -----------------------------------------------------------------------------

    def evidence(
        self,
        source: Source,
        end: int,
        final_until: int | None = None,
        open_keys: Collection[RowKey] | None = None,
    ) -> Evidence:
        """The numbers of the keys that can change an alert at `end`. A full tick (the first,
        or after a reset) takes every key, or, when `open_keys` (the keys with an open
        alert) is given, the fresh keys with enough evidence plus those: only they can
        change an alert, and judging 10,000 quiet keys at a start costs a second."""
        p = self.params
        h0, h1, m0 = span_bounds(end, p)
        if self._end is not None and end < self._end:  # the clock went back: start over
            self._reset()
        if self._last_refresh is None or end - self._last_refresh >= REFRESH_MINUTES:
            if self._last_refresh is not None and self.recheck_minutes > 0:
                self._forget_hours(max(h0, h1 - 24), h1)  # late documents: read the last day again
            self._last_refresh = end
        # Minute buckets: re-read the young ones (late documents), load the missing.
        recheck = self.recheck_minutes
        if recheck > 0:
            stale = [m for m in range(max(m0, self._lo), self._hi) if self._minutes[m].fetched_at - m < recheck]
            if stale:
                got = self._fetch(source, min(stale), max(stale) + 1, 1, end)
                for m in stale:
                    self._replace_minute(m, got[m])
        if self._hi < m0 or self._lo > m0:  # nothing held is of use: start the buckets over
            self._minutes.clear()
            self._nonempty.clear()
            self._lo = self._hi = m0
            self._end = None  # the window sums held buckets that are gone: rebuild them
        if self._hi < end:
            lo, hi = self._hi, end
            if final_until is not None and recheck == 0 and final_until > end:
                hi = max(hi, min(final_until, end + 24 * 60))  # a replay's watermark: read ahead
            got = self._fetch(source, lo, hi, 1, max(end, hi) if recheck == 0 else end)
            for m in range(lo, hi):
                self._put_minute(m, got[m])
            self._hi = hi
        self._ensure_hours(source, h0, h1, end)
        if self._end is None:
            self._rebuild(end)
        else:
            self._advance(end)
        self._drop_minutes_before(min(m0, end - max(self._sums)))
        self._evict_idle(end)

        g = len(self._keys)
        feed_g = self._index.get(FEED)
        widest = self._sums[max(self._sums)]
        if self._full and open_keys is None:
            present = (self._ring_sum[0, :g] > 0) | (widest[:g, 2] > 0)
            cand = set(np.nonzero(present)[0].tolist())
        else:
            # Fresh keys that hold enough negative evidence to fire at some horizon (the
            # day-long window holds every shorter one), and watched keys whose own windows,
            # baseline or the feed's windows moved (a watched key that is not fresh cannot
            # spike, and its calm verdict depends on nothing else); on a full tick, every
            # key with an open alert.
            day = self._sums[max(p.windows)][:g]
            evidence = day[:, 1] + copy_evidence(day[:, 1], np.maximum(day[:, 3] - day[:, 1], 0), p)
            fresh = (self._sums[p.fresh_minutes][:g, 2] > 0) & (evidence >= p.min_negative)
            cand = set(np.nonzero(fresh)[0].tolist())
            if self._full:
                cand |= {self._index[k] for k in open_keys or () if k in self._index}
            else:
                # The calm test also weighs the key's negatives against the count its usual
                # share of the feed predicts, so the feed's own windows moving counts too.
                feed_moved = feed_g is not None and bool(self._dirty[feed_g])
                cand |= {
                    i for i in self._watch if feed_moved or self._dirty[i] or self._seen_version[i] != self._version
                }
        if feed_g is not None:
            self._dirty[feed_g] = False
        active = sorted((i for i in cand if self._keys[i][0] in ("topic", "entity")), key=lambda i: self._keys[i])
        idx = np.asarray(active, dtype=np.int64)
        if not active:  # nothing can change this minute: skip building the evidence
            return Evidence([], end, {}, {}, np.zeros((0, 0)), np.zeros((0, 0)), 0.0, {}, np.zeros(0, dtype=np.int64))
        order = (np.arange(h0, h1) % self._nb).astype(np.int64)
        feed = {w: (s[feed_g] if feed_g is not None else np.zeros(NF, dtype=np.int64)) for w, s in self._sums.items()}
        feed_base = float(self._ring_sum[0, feed_g]) if feed_g is not None else 0.0
        has_base = self._ring_sum[0, idx] > 0 if len(idx) else np.zeros(0, dtype=bool)
        first = self._first[idx] if len(idx) else np.zeros(0, dtype=np.int64)
        history = np.where(has_base, end - h0 * 60, np.where(first < _NEVER, end - first, 0))
        keys = [self._keys[i] for i in active]
        if len(idx):
            self._dirty[idx] = False
            self._seen_version[idx] = self._version
        # Baseline hours as evidence, counted like the windows (stories + capped copy evidence),
        # so a feed where copies are common does not look negative whenever they come.
        ring = self._ring[:, idx][:, :, order] if len(idx) else np.zeros((NF, 0, len(order)), dtype=np.int64)
        extra = copy_evidence(ring[1], np.maximum(ring[3] - ring[1], 0), p).astype(np.int64)
        block_tot, block_neg = ring[0] + extra, ring[1] + extra
        priors = self.priors()
        # Baselines change only when the ring does: computed once per key and ring version.
        todo = [j for j, g in enumerate(active) if self._bcache.get(g, (-1,))[0] != self._version]
        if todo:
            t = np.asarray(todo, dtype=np.int64)
            bn, bt, bx = key_baselines([keys[j] for j in todo], block_neg[t], block_tot[t], priors, p)
            for j, n_, t_, x_ in zip(todo, bn.tolist(), bt.tolist(), bx.tolist(), strict=True):
                self._bcache[active[j]] = (self._version, n_, t_, x_)
        cached = np.asarray([self._bcache[g][1:] for g in active], dtype=np.int64).reshape(-1, 3)
        return Evidence(
            keys=keys,
            end=end,
            sums={w: s[idx] for w, s in self._sums.items()},
            feed=feed,
            block_tot=block_tot,
            block_neg=block_neg,
            feed_base_total=feed_base,
            priors=priors,
            history=history.astype(np.int64),
            base=(cached[:, 0], cached[:, 1], cached[:, 2]),
        )

    def _forget_hours(self, lo: int, hi: int) -> None:
        """Empty the ring's columns of hours [lo, hi), so `_ensure_hours` reads them again."""
        for h in range(lo, hi):
            col = h % self._nb
            if self._ring_hour[col] == h:
                self._ring_sum -= self._ring[:, :, col]
                self._ring[:, :, col] = 0
                self._ring_hour[col] = -1
                self._priors = None
                self._version += 1

    @property
    def needs_full_tick(self) -> bool:
        """The next tick is a full one (see `evidence`): give it the keys with open alerts."""
        return self._full

    def tick(
        self,
        source: Source,
        now: datetime,
        final_until: datetime | None = None,
        open_keys: Collection[RowKey] | None = None,
    ) -> list[Signal]:
        """Signals for the keys that can matter at `now` (see the module docstring): on a
        full tick every key (or, given `open_keys`, the fresh ones with enough evidence and
        those with an open alert), else the spiking ones and those watched since they spiked.

        `final_until` (a replay's watermark) says minutes before it are complete, so they
        can be read ahead in one query instead of one per tick.
        """
        end = to_minute(now)
        with self._lock:
            ev = self.evidence(source, end, to_minute(final_until) if final_until is not None else None, open_keys)
            self._full_tick, self._full = self._full, False
            if not ev.keys:
                if self._full_tick:
                    self._watch = set()
                return []
            v = evaluate(ev, self.params)
            watched = np.asarray([self._index[k] in self._watch for k in ev.keys], dtype=bool)
            # Keep evaluating a key from its first spiking verdict until a calm one: only
            # such a key can hold an open (pending or firing) alert.
            for k, spiking, calm in zip(ev.keys, v.spiking.tolist(), v.calm.tolist(), strict=True):
                g = self._index[k]
                if calm:
                    self._watch.discard(g)
                elif spiking or self._full_tick:
                    self._watch.add(g)
            # Only these verdicts can change an alert: a key that is not spiking and was not
            # being watched has no open alert (a full tick speaks for every key).
            only = None if self._full_tick else (v.spiking | watched)
        return to_signals(v, now, only)

    def watching(self) -> bool:
        """Whether a key is being watched (it spiked and has not been calm since): then
        every minute can resolve an alert and no tick may be skipped."""
        return bool(self._watch) or self._full

    def forget(self) -> None:
        """Start over (a replay's own history, a wiped database)."""
        with self._lock:
            self._index.clear()
            self._keys.clear()
            self._reset()
