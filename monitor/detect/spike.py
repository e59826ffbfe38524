"""Negative-spike statistics per key: baseline, shrinkage, test, hysteresis. Pure numpy/scipy.

The question asked of every key (topic or company) at every tick: *is the share of
negative documents in the recent window clearly above what is normal for this key?*
Only novel documents count (near-duplicates, retweets and syndicated copies once), so
a repost storm of one headline is one document, and volume alone never fires: more
documents at the usual negative share is a busy day, not bad news.

Baseline
    The pooled negative share of the key over the trailing ``baseline_days`` of complete
    hours that end before the oldest minute any window looks at (windows and baseline
    never overlap). Pooling counts (sum of negatives / sum of documents) means minutes
    and hours with no volume (nights, feed outages) add nothing and dilute nothing.
    Anomalies are not learned: an hour block whose negative count is itself a surge
    (same effect gates as firing, one-sided binomial p < `EXCLUDE_ALPHA`) is left out,
    so yesterday's scandal does not raise today's bar. The reference for that test is
    the median of the key's daily shares, which a bad day or two cannot move (the
    pooled share of a sparse company with one scandal in its week *is* the scandal).
    Excluded hours are reported.

Shrinkage (empirical Bayes)
    A sparse company's own share is noise, so the key's rate gets a Beta prior centred
    on the parent rate (the whole feed, the ``all`` row) worth ``prior_strength``
    pseudo-documents: ``shrunk = (s*p_parent + neg) / (s + total)``. A key with 5
    documents of history sits at the feed's rate; one with 50,000 at its own.

Test
    Under "nothing happened", the window's negative count is beta-binomial: the
    key's rate is uncertain (posterior Beta with concentration ``s + total``) and in real
    streams drifts between windows, so the concentration is capped at
    ``max_concentration``. p = P(X >= k). A key fires only if all hold:

    * it is warm: ``warmup_minutes`` minutes of feed history since the key was first seen
      (counted in clock hours in which the feed had any volume, so an outage does not
      count as history but a sparse feed's quiet minutes do);
    * window negatives >= ``min_negative``;
    * p <= alpha / m, m = the number of (key, window) tests made this tick (Bonferroni:
      the chance that *any* quiet key fires on a tick is at most alpha);
    * lift = share / shrunk >= ``min_lift`` and share - shrunk >= ``min_share_delta``:
      significance alone is not enough on a busy key, the effect must matter. (For a
      key whose baseline is above ~45% negative the lift asked for is capped at halfway
      between the baseline and 100%, or it could never fire.)

    Several window lengths are tested (``window_minutes`` and ``extra_windows_minutes``):
    the short one catches a burst in minutes, the longer ones a sparse company whose bad
    day unfolds over hours. All count toward m.

Hysteresis
    A key is *calm* when, for each window length, every one of the last
    ``resolve_minutes`` windows (ending at each of the last minutes) was below the
    resolve level: no volume, fewer than half of ``min_negative`` negatives, or a share
    below halfway between the baseline and the firing share. In between it is neither
    spiking nor calm and an alert keeps its state. Because calm is computed from the
    counts at the last few minutes, not remembered, every daemon (and every replay)
    reaches the same verdict without shared state.

Feed outages
    Zero-volume minutes change neither the shares nor the history, so an outage cannot
    fire, and neither can the recovery: returning volume at the usual share is not
    negativity. A key whose history was wiped out by a gap longer than the baseline span
    warms up again before it can fire.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from scipy import stats

from monitor.detect.signals import Key, Signal
from monitor.detect.windows import RowKey, from_minute

EXCLUDE_ALPHA = 1e-3  # per hour block: how surprising an hour must be to be left out of the baseline
DEFAULT_PARENT_SHARE = 0.25  # only used before the feed has any history at all
CRITICAL_LIFT = 3.0  # a firing key at this lift or more is marked severity "critical"


@dataclass(frozen=True, slots=True)
class Params:
    """The [detect] settings the statistics use (built from DetectSettings)."""

    windows: tuple[int, ...] = (15, 60, 240)
    alpha: float = 0.001
    min_negative: int = 8
    min_lift: float = 1.8
    min_share_delta: float = 0.10
    warmup_minutes: int = 120
    resolve_minutes: int = 15
    prior_strength: float = 50.0
    max_concentration: float = 400.0
    baseline_days: float = 7.0

    @staticmethod
    def from_settings(cfg: Any) -> Params:
        extra = tuple(getattr(cfg, "extra_windows_minutes", (60, 240)) or ())
        windows = tuple(sorted({int(cfg.window_minutes), *(int(w) for w in extra)}))
        return Params(
            windows=windows,
            alpha=float(cfg.alpha),
            min_negative=int(cfg.min_negative),
            min_lift=float(cfg.min_lift),
            min_share_delta=float(cfg.min_share_delta),
            warmup_minutes=int(cfg.warmup_minutes),
            resolve_minutes=int(cfg.resolve_minutes),
            prior_strength=float(cfg.prior_strength),
            max_concentration=float(getattr(cfg, "max_concentration", 400.0)),
            baseline_days=float(cfg.baseline_days),
        )

    @property
    def main_window(self) -> int:
        return self.windows[0]

    @property
    def positions(self) -> int:
        """How many window ends the resolve test looks at."""
        return max(1, self.resolve_minutes)

    @property
    def span_minutes(self) -> int:
        """Minutes of minute-level data the windows need, ending at the tick's minute."""
        return max(self.windows) + self.positions - 1

    @property
    def baseline_hours(self) -> int:
        return max(1, math.ceil(self.baseline_days * 24))

    @property
    def resolve_negative(self) -> int:
        return max(1, math.ceil(self.min_negative / 2))


def span_bounds(end: int, p: Params) -> tuple[int, int, int]:
    """(first baseline hour, baseline end hour (exclusive), first recent minute) for a tick ending at `end`.

    The baseline is made of complete hours ending at or before the oldest minute any
    window or resolve position looks at; the minute-level span starts where it ends.
    """
    base_end_h = (end - p.span_minutes) // 60
    return base_end_h - p.baseline_hours, base_end_h, base_end_h * 60


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything one tick's test needs, keys aligned on axis 0.

    Blocks are baseline hours ``[h0, h1)``; recent columns are minutes ``[h1*60, end)``.
    `parent_*` is the feed as a whole (the ``all`` row); `*_live` count minutes in which
    the feed had any volume.
    """

    keys: Sequence[RowKey]
    end: int
    block_tot: np.ndarray
    block_neg: np.ndarray
    recent_tot: np.ndarray
    recent_neg: np.ndarray
    parent_block_tot: np.ndarray
    parent_block_neg: np.ndarray
    parent_block_live: np.ndarray
    parent_recent_live: np.ndarray
    seen_before: np.ndarray | None = None  # keys known from before the baseline span
    base: BaselineStats | None = None  # precomputed `baseline_stats` (the detector caches it per hour)


@dataclass(frozen=True, slots=True)
class BaselineStats:
    """The baseline half of a tick, which changes only when the baseline hours move."""

    parent_share: float
    neg: np.ndarray
    tot: np.ndarray
    excluded: np.ndarray

    def take(self, idx: np.ndarray) -> BaselineStats:
        return BaselineStats(self.parent_share, self.neg[idx], self.tot[idx], self.excluded[idx])


def shrink(neg: np.ndarray, tot: np.ndarray, parent_share: float, prior_strength: float) -> np.ndarray:
    """Posterior mean of the key's negative rate under a Beta(s*p, s*(1-p)) prior."""
    neg = np.asarray(neg, dtype=float)
    tot = np.asarray(tot, dtype=float)
    denom = prior_strength + tot
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (prior_strength * parent_share + neg) / denom
    return np.where(denom > 0, out, parent_share)


def lift_share(base: np.ndarray, min_lift: float) -> np.ndarray:
    """The share the lift gate asks for: ``min_lift * base``, but never more than halfway
    from the baseline to 100% negative (a key that is normally 60% negative could never
    reach a lift of 1.8)."""
    base = np.asarray(base, dtype=float)
    return np.minimum(min_lift * base, (1.0 + base) / 2.0)


def surge_mask(
    neg: np.ndarray, tot: np.ndarray, ref: np.ndarray, p: Params, alpha: float = EXCLUDE_ALPHA
) -> np.ndarray:
    """Cells (key x block) that are surges against the reference share `ref` (per key)."""
    neg = np.asarray(neg)
    tot = np.asarray(tot)
    ref_b = np.broadcast_to(np.asarray(ref, dtype=float).reshape(-1, *([1] * (neg.ndim - 1))), neg.shape)
    mask = neg >= p.resolve_negative
    if not mask.any():
        return mask
    idx = np.nonzero(mask)
    n, k, r = tot[idx], neg[idx], np.clip(ref_b[idx], 1e-9, 1 - 1e-9)
    share = k / n
    big = (share >= lift_share(r, p.min_lift)) & (share - r >= p.min_share_delta)
    pv = np.ones_like(share)
    if big.any():
        pv[big] = stats.binom.sf(k[big] - 1, n[big], r[big])
    out = np.zeros_like(mask)
    out[idx] = big & (pv < alpha)
    return out


def robust_reference(block_neg: np.ndarray, block_tot: np.ndarray, parent_share: float, p: Params) -> np.ndarray:
    """A per-key share that a few surge hours cannot drag up: the median of daily shrunk shares.

    The pooled share of a sparse company with one bad day in its week is mostly that
    day; the median over days is not. Keys with no volume at all get the parent share.
    """
    k, nb = block_tot.shape
    days = max(1, math.ceil(nb / 24))
    pad = days * 24 - nb
    bt = np.pad(block_tot, ((0, 0), (pad, 0))).reshape(k, days, 24).sum(axis=2)
    bn = np.pad(block_neg, ((0, 0), (pad, 0))).reshape(k, days, 24).sum(axis=2)
    daily = np.where(bt > 0, shrink(bn, bt, parent_share, p.prior_strength), np.nan)
    has = (bt > 0).any(axis=1)
    out = np.full(k, parent_share, dtype=float)
    if has.any():
        out[has] = np.nanmedian(daily[has], axis=1)
    return out


def baseline(
    block_neg: np.ndarray, block_tot: np.ndarray, parent_share: float, p: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(baseline negatives, baseline total, excluded hour count) per key, surge hours left out.

    Hours are flagged against a robust reference (median of daily shares), then once
    more against the pooled share of what is left; both sets are excluded.
    """
    ref = robust_reference(block_neg, block_tot, parent_share, p)
    drop = surge_mask(block_neg, block_tot, ref, p)
    n1 = np.where(drop, 0, block_neg).sum(axis=1)
    t1 = np.where(drop, 0, block_tot).sum(axis=1)
    drop |= surge_mask(block_neg, block_tot, shrink(n1, t1, parent_share, p.prior_strength), p)
    neg = np.where(drop, 0, block_neg).sum(axis=1)
    tot = np.where(drop, 0, block_tot).sum(axis=1)
    return neg, tot, drop.sum(axis=1)


def parent_rate(block_neg: np.ndarray, block_tot: np.ndarray, p: Params) -> tuple[float, int, int]:
    """The feed's negative share over the baseline (surge hours left out), with its counts."""
    if block_tot.sum() == 0:
        return DEFAULT_PARENT_SHARE, 0, 0
    pooled = block_neg.sum() / block_tot.sum()
    neg, tot, _ = baseline(
        block_neg[None, :], block_tot[None, :], pooled, Params(**{**_asdict(p), "prior_strength": 0.0})
    )
    n, t = int(neg[0]), int(tot[0])
    return ((n + 0.5) / (t + 1.0) if t else float(pooled)), n, t


def _asdict(p: Params) -> dict[str, Any]:
    return {f: getattr(p, f) for f in p.__dataclass_fields__}


def beta_binomial_sf(k: np.ndarray, n: np.ndarray, mean: np.ndarray, concentration: np.ndarray) -> np.ndarray:
    """P(X >= k) for X ~ BetaBinomial(n, c*mean, c*(1-mean)); 1 where n == 0 or k <= 0."""
    k = np.asarray(k)
    n = np.asarray(n)
    m = np.clip(np.asarray(mean, dtype=float), 1e-9, 1 - 1e-9)
    c = np.asarray(concentration, dtype=float)
    out = np.ones(np.broadcast(k, n, m, c).shape, dtype=float)
    k, n, m, c = np.broadcast_arrays(k, n, m, c)
    sel = (n > 0) & (k > 0)
    if sel.any():
        out[sel] = stats.betabinom.sf(k[sel] - 1, n[sel], c[sel] * m[sel], c[sel] * (1 - m[sel]))
    return np.clip(out, 0.0, 1.0)


def history_minutes(ev: Evidence, p: Params) -> np.ndarray:
    """Feed-live minutes between each key's first appearance and the main window's start.

    Liveness is judged per clock hour: an hour in which the feed had any document counts
    in full, an hour without any (an outage, or a dead night of a sparse feed) does not.
    So a sparse feed still warms up in hours, while a gap never counts as history. The
    recent columns start on an hour boundary (see `span_bounds`).
    """
    k = len(ev.keys)
    b = ev.block_tot.shape[1]
    s = ev.recent_tot.shape[1]
    win_col = s - p.main_window  # first column of the main window
    live_b = 60 * (np.asarray(ev.parent_block_live, dtype=np.int64) > 0)
    rl = np.asarray(ev.parent_recent_live, dtype=np.int64) > 0
    hours = -(-len(rl) // 60)
    per_hour = np.pad(rl, (0, hours * 60 - len(rl))).reshape(hours, 60).any(axis=1) if len(rl) else np.zeros(0, bool)
    live_m = np.repeat(per_hour, 60)[: len(rl)].astype(np.int64)[: max(win_col, 0)]
    # Live minutes from block j to the window start, and from recent column i.
    after_block = np.concatenate([np.cumsum(live_b[::-1])[::-1], [0]]) + live_m.sum()
    after_min = np.concatenate([np.cumsum(live_m[::-1])[::-1], [0]])
    out = np.zeros(k, dtype=np.int64)
    has_b = ev.block_tot.sum(axis=1) > 0 if b else np.zeros(k, dtype=bool)
    if b:
        first_b = np.argmax(ev.block_tot > 0, axis=1)
        out[has_b] = after_block[first_b[has_b]]
    if ev.seen_before is not None:
        seen = np.asarray(ev.seen_before, dtype=bool)
        out[seen] = after_block[0]
        has_b = has_b | seen
    pre = ev.recent_tot[:, : max(win_col, 0)]
    has_m = (~has_b) & (pre.sum(axis=1) > 0) if pre.shape[1] else np.zeros(k, dtype=bool)
    if has_m.any():
        first_m = np.argmax(pre > 0, axis=1)
        out[has_m] = after_min[first_m[has_m]]
    return out


@dataclass(frozen=True, slots=True)
class Verdicts:
    """Per-key results of one tick (arrays aligned with `keys`), plus tick-wide figures."""

    keys: Sequence[RowKey]
    end: int
    spiking: np.ndarray
    calm: np.ndarray
    window: np.ndarray  # chosen window length per key
    max_negative: np.ndarray  # the largest negative count over all window lengths
    k: np.ndarray
    n: np.ndarray
    share: np.ndarray
    base_neg: np.ndarray
    base_tot: np.ndarray
    base_share: np.ndarray
    shrunk: np.ndarray
    lift: np.ndarray
    pvalue: np.ndarray
    fire_share: np.ndarray
    resolve_share: np.ndarray
    history: np.ndarray
    warm: np.ndarray
    excluded_hours: np.ndarray
    reason: list[str]
    parent_share: float
    tests: int
    keys_tested: int
    corrected_alpha: float
    alpha: float


def baseline_stats(
    block_neg: np.ndarray, block_tot: np.ndarray, parent_block_neg: np.ndarray, parent_block_tot: np.ndarray, p: Params
) -> BaselineStats:
    parent, _, _ = parent_rate(np.asarray(parent_block_neg), np.asarray(parent_block_tot), p)
    neg, tot, excluded = baseline(block_neg, block_tot, parent, p)
    return BaselineStats(parent, neg, tot, excluded)


def _cumsum(a: np.ndarray) -> np.ndarray:
    cs = np.zeros((a.shape[0], a.shape[1] + 1), dtype=np.int64)
    np.cumsum(a, axis=1, out=cs[:, 1:])
    return cs


def _windows_from_cumsum(cs: np.ndarray, width: int, positions: int) -> np.ndarray:
    """`rolling_sums` on a precomputed cumulative sum (one cumsum serves every window length)."""
    t = cs.shape[1] - 1
    ends = np.arange(t - positions + 1, t + 1)
    return cs[:, ends] - cs[:, ends - width]


def evaluate(ev: Evidence, p: Params, n_tests: int | None = None) -> Verdicts:
    """Score every key, then decide. `n_tests` overrides the Bonferroni count (simulations)."""
    kk = len(ev.keys)
    bs = ev.base or baseline_stats(ev.block_neg, ev.block_tot, ev.parent_block_neg, ev.parent_block_tot, p)
    parent, base_neg, base_tot, excluded = bs.parent_share, bs.neg, bs.tot, bs.excluded
    shrunk = shrink(base_neg, base_tot, parent, p.prior_strength)
    with np.errstate(invalid="ignore", divide="ignore"):
        base_share = np.where(base_tot > 0, base_neg / np.maximum(base_tot, 1), np.nan)
    conc = np.maximum(np.minimum(p.prior_strength + base_tot, p.max_concentration), 2.0)
    need_lift = lift_share(shrunk, p.min_lift)
    fire_share = np.maximum(need_lift, shrunk + p.min_share_delta)
    resolve_share = shrunk + 0.5 * (fire_share - shrunk)
    hist = history_minutes(ev, p)
    warm = hist >= p.warmup_minutes

    nw = len(p.windows)
    K = np.zeros((kk, nw), dtype=np.int64)
    N = np.zeros((kk, nw), dtype=np.int64)
    below = np.ones(kk, dtype=bool)
    span = max(p.windows) + p.positions - 1
    cs_tot = _cumsum(ev.recent_tot[:, -span:])
    cs_neg = _cumsum(ev.recent_neg[:, -span:])
    for j, w in enumerate(p.windows):
        tot = _windows_from_cumsum(cs_tot, w, p.positions)
        neg = _windows_from_cumsum(cs_neg, w, p.positions)
        K[:, j], N[:, j] = neg[:, -1], tot[:, -1]
        with np.errstate(invalid="ignore", divide="ignore"):
            sh = neg / np.maximum(tot, 1)
        ok = (tot == 0) | (neg < p.resolve_negative) | (sh < resolve_share[:, None])
        below &= ok.all(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        S = np.where(N > 0, K / np.maximum(N, 1), np.nan)
    # Exact p-values where they can matter (enough negatives, share above baseline);
    # elsewhere the test cannot pass and p is left undefined (NaN, reported as null).
    need = (p.resolve_negative <= K) & (N > 0) & (N * shrunk[:, None] < K)
    P = np.full(K.shape, np.nan)
    if need.any():
        cb = np.broadcast_to(conc[:, None], K.shape)
        sb = np.broadcast_to(shrunk[:, None], K.shape)
        P[need] = beta_binomial_sf(K[need], N[need], sb[need], cb[need])
    tested = warm[:, None] & (N > 0)
    m = int(n_tests) if n_tests is not None else int(tested.sum())
    corrected = p.alpha / max(m, 1)
    big_k = p.min_negative <= K
    sig = corrected >= P
    lift_ok = need_lift[:, None] <= S
    delta_ok = (S - shrunk[:, None]) >= p.min_share_delta
    fire = tested & big_k & sig & lift_ok & delta_ok
    spiking = fire.any(axis=1)
    calm = below & ~spiking

    # The window that speaks for the key: the most significant firing one, else the most
    # significant tested one, else the main window.
    pz = np.nan_to_num(P, nan=1.0)
    score = np.where(fire, pz, np.where(tested, 2.0 + pz, 4.0))
    choice = np.argmin(score, axis=1)
    rows = np.arange(kk)
    k_c, n_c, s_c, p_c = K[rows, choice], N[rows, choice], S[rows, choice], P[rows, choice]
    with np.errstate(invalid="ignore", divide="ignore"):
        lift = np.where(n_c > 0, s_c / np.maximum(shrunk, 1e-12), np.nan)
    reasons: list[str] = []
    f_c = fire[rows, choice].tolist()
    t_c, bk_c, sg_c = tested[rows, choice].tolist(), big_k[rows, choice].tolist(), sig[rows, choice].tolist()
    lo_c, do_c = lift_ok[rows, choice].tolist(), delta_ok[rows, choice].tolist()
    warm_l, n_l = warm.tolist(), n_c.tolist()
    for i in range(kk):
        if f_c[i]:
            reasons.append("spiking")
        elif not warm_l[i]:
            reasons.append("warming_up")
        elif not t_c[i] or n_l[i] == 0:
            reasons.append("no_volume")
        elif not bk_c[i]:
            reasons.append("too_few_negative")
        elif not sg_c[i]:
            reasons.append("not_significant")
        elif not lo_c[i]:
            reasons.append("lift_too_small")
        elif not do_c[i]:
            reasons.append("share_delta_too_small")
        else:
            reasons.append("not_spiking")
    return Verdicts(
        keys=ev.keys,
        end=ev.end,
        spiking=spiking,
        calm=calm,
        window=np.asarray(p.windows)[choice],
        max_negative=K.max(axis=1) if nw else np.zeros(kk, dtype=np.int64),
        k=k_c,
        n=n_c,
        share=s_c,
        base_neg=base_neg,
        base_tot=base_tot,
        base_share=base_share,
        shrunk=shrunk,
        lift=lift,
        pvalue=p_c,
        fire_share=fire_share,
        resolve_share=resolve_share,
        history=hist,
        warm=warm,
        excluded_hours=excluded,
        reason=reasons,
        parent_share=float(parent),
        tests=m,
        keys_tested=int(tested.any(axis=1).sum()),
        corrected_alpha=float(corrected),
        alpha=p.alpha,
    )


def _f(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(f"{float(x):.6g}")


def _floats(a: np.ndarray, digits: int | None = 6) -> list[float | None]:
    """Array to JSON-ready floats: NaN/inf become None; shares rounded to `digits` places."""
    a = np.asarray(a, dtype=float)
    r = np.round(a, digits) if digits is not None else a
    out = r.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()


def _sig(a: np.ndarray) -> list[float | None]:
    """p-values: 6 significant digits (tiny values must not round to 0)."""
    a = np.asarray(a, dtype=float)
    fin = np.isfinite(a) & (a > 0)
    mag = np.zeros_like(a)
    mag[fin] = np.floor(np.log10(a[fin]))
    r = np.where(fin, np.round(a * 10.0 ** (5 - mag)) / 10.0 ** (5 - mag), a)
    out = r.astype(object)
    out[~np.isfinite(a)] = None
    return out.tolist()


def to_signals(v: Verdicts, at: datetime) -> list[Signal]:
    """One Signal per topic/entity key; `numbers` holds every figure the decision used."""
    ints = {
        name: np.asarray(getattr(v, name)).astype(np.int64).tolist()
        for name in ("window", "k", "n", "base_neg", "base_tot", "history", "excluded_hours", "max_negative")
    }
    flags = {name: np.asarray(getattr(v, name)).astype(bool).tolist() for name in ("spiking", "calm", "warm")}
    delta = np.where(np.asarray(v.n) > 0, np.asarray(v.share, dtype=float) - v.shrunk, np.nan)
    fl = {
        "share": _floats(v.share),
        "baseline_share": _floats(v.base_share),
        "shrunk_baseline": _floats(v.shrunk),
        "lift": _floats(v.lift, 4),
        "share_delta": _floats(delta),
        "fire_share": _floats(v.fire_share),
        "resolve_share": _floats(v.resolve_share),
    }
    pvals = _sig(v.pvalue)
    lift_raw = np.nan_to_num(np.asarray(v.lift, dtype=float), nan=0.0).tolist()
    common = {
        "parent_share": _f(v.parent_share),
        "alpha": v.alpha,
        "corrected_alpha": _f(v.corrected_alpha),
        "tests": v.tests,
        "keys_tested": v.keys_tested,
    }
    out: list[Signal] = []
    for i, (kind, value) in enumerate(v.keys):
        if kind not in ("topic", "entity"):
            continue
        w = ints["window"][i]
        spiking = flags["spiking"][i]
        numbers = {
            "window_minutes": w,
            "window_negative": ints["k"][i],
            "window_total": ints["n"][i],
            "max_window_negative": ints["max_negative"][i],
            "share": fl["share"][i],
            "baseline_negative": ints["base_neg"][i],
            "baseline_total": ints["base_tot"][i],
            "baseline_share": fl["baseline_share"][i],
            "parent_share": common["parent_share"],
            "shrunk_baseline": fl["shrunk_baseline"][i],
            "lift": fl["lift"][i],
            "share_delta": fl["share_delta"][i],
            "p_value": pvals[i],
            "alpha": common["alpha"],
            "corrected_alpha": common["corrected_alpha"],
            "tests": common["tests"],
            "keys_tested": common["keys_tested"],
            "fire_share": fl["fire_share"][i],
            "resolve_share": fl["resolve_share"][i],
            "history_minutes": ints["history"][i],
            "warm": flags["warm"][i],
            "excluded_baseline_hours": ints["excluded_hours"][i],
            "reason": v.reason[i],
        }
        severity = "critical" if spiking and lift_raw[i] >= CRITICAL_LIFT else "warning"
        out.append(
            Signal(
                key=Key(kind, value),  # type: ignore[arg-type]
                at=at,
                window_start=from_minute(v.end - w),
                spiking=spiking,
                calm=flags["calm"][i],
                numbers=numbers,
                severity=severity,
            )
        )
    return out
