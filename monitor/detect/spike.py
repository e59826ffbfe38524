"""Negative-spike statistics per key: baseline, shrinkage, test, hysteresis. Pure numpy/scipy.

The question asked of every key (topic or company) at every tick: *is the share of
negative documents in the recent window clearly above what is normal for this key?*
Only novel documents count (near-duplicates, retweets and syndicated copies once), so
a repost storm of one headline is one document, and volume alone never fires: more
documents at the usual negative share is a busy day, not bad news.

The baseline and its shrinkage are in `monitor.detect.baseline`; this module tests the
recent windows against them.

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

import numpy as np

from monitor.detect.baseline import BaselineStats, baseline_stats, beta_binomial_sf, lift_share, shrink
from monitor.detect.params import Params
from monitor.detect.signals import Key, Signal
from monitor.detect.windows import from_minute
from monitor.store.keys import RowKey

CRITICAL_LIFT = 3.0  # a firing key at this lift or more is marked severity "critical"


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
