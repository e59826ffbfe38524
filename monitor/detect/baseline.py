"""What is normal for each key: the baseline negative share, shrunk toward its population. Pure numpy/scipy.

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
    on its population's pooled share (companies for a company, topics for a topic) whose
    strength is estimated from how much the population's keys differ
    (`population_prior`): ``shrunk = (s*p_population + neg) / (s + total)``. A key with
    5 documents of history sits near its population's share; one with 50,000 at its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from monitor.detect.params import Params

EXCLUDE_ALPHA = 1e-3  # per hour block: how surprising an hour must be to be left out of the baseline


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
    return _row_nanmedian(daily, parent_share)


def _row_nanmedian(a: np.ndarray, empty: float) -> np.ndarray:
    """Median of each row's finite values (`empty` for a row with none); numpy's nanmedian
    goes through masked arrays on small inputs, which costs more than the rest of a tick."""
    srt = np.sort(a, axis=1)  # NaN sorts last
    cnt = np.isfinite(a).sum(axis=1)
    rows = np.arange(a.shape[0])
    lo = srt[rows, np.maximum((cnt - 1) // 2, 0)]
    hi = srt[rows, np.maximum(cnt // 2, 0)]
    return np.where(cnt > 0, (lo + hi) / 2.0, empty)


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


# Upper tails from scipy.special, not scipy.stats: the distribution classes' machinery
# checks and broadcasts its arguments on every call (about 0.2 ms), and BetaBinomial has no
# closed-form cdf there, so `stats.betabinom.sf` sums the pmf element by element through
# np.vectorize. A replay evaluates thousands of ticks of a few keys each, where that
# overhead was most of the statistics' cost.
_BB_MAX_TERMS = 5_000_000  # pmf terms summed at once; larger batches go in parts


def beta_binomial_sf(k: np.ndarray, n: np.ndarray, mean: np.ndarray, concentration: np.ndarray) -> np.ndarray:
    """P(X >= k) for X ~ BetaBinomial(n, c*mean, c*(1-mean)); 1 where n == 0 or k <= 0.

    The upper tail is summed directly (pmf terms k..n of every element in one flat array,
    then one `np.add.reduceat`), which also keeps tails far below 1e-16 instead of losing
    them to ``1 - cdf``."""
    k = np.asarray(k)
    n = np.asarray(n)
    m = np.clip(np.asarray(mean, dtype=float), 1e-9, 1 - 1e-9)
    c = np.asarray(concentration, dtype=float)
    out = np.ones(np.broadcast(k, n, m, c).shape, dtype=float)
    k, n, m, c = np.broadcast_arrays(k, n, m, c)
    sel = (n > 0) & (k > 0)
    if not sel.any():
        return out
    ks = np.rint(k[sel]).astype(np.int64)
    ns = np.rint(n[sel]).astype(np.int64)
    a, b = c[sel] * m[sel], c[sel] * (1 - m[sel])
    terms = np.maximum(ns - ks + 1, 0)  # k > n: an impossible count, tail 0
    if terms.sum() <= _BB_MAX_TERMS:
        out[sel] = _bb_tail(ks, ns, a, b, terms)
    else:  # bounded memory: a batch of elements at a time
        tail, start = np.zeros(len(ks)), 0
        while start < len(ks):
            stop = start + max(1, int(np.searchsorted(np.cumsum(terms[start:]), _BB_MAX_TERMS, side="right")))
            part = slice(start, stop)
            tail[part] = _bb_tail(ks[part], ns[part], a[part], b[part], terms[part])
            start = stop
        out[sel] = tail
    return np.clip(out, 0.0, 1.0)


def _bb_tail(ks: np.ndarray, ns: np.ndarray, a: np.ndarray, b: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Sum of the BetaBinomial(n, a, b) pmf over k..n for each element (`terms` = n - k + 1)."""
    tail = np.zeros(len(ks))
    some = terms > 0
    if not some.any():
        return tail
    offsets = np.cumsum(terms) - terms
    owner = np.repeat(np.arange(len(ks)), terms)
    j = ks[owner] + (np.arange(len(owner)) - offsets[owner])
    nn, aa, bb = ns[owner], a[owner], b[owner]
    logpmf = special.gammaln(nn + 1) - special.gammaln(j + 1) - special.gammaln(nn - j + 1)
    logpmf += special.betaln(j + aa, nn - j + bb) - special.betaln(aa, bb)
    tail[some] = np.add.reduceat(np.exp(logpmf), offsets[some])
    return tail


def nb_sf(n: np.ndarray, mean: np.ndarray, overdispersion: float) -> np.ndarray:
    """P(X >= n) for a count with this mean and variance ``mean + overdispersion * mean**2``
    (negative binomial; Poisson when overdispersion is 0). 1 where n <= 0; 0 where the
    mean is 0 and n > 0 is impossible, reported as 0."""
    n = np.asarray(n, dtype=float)
    mu = np.maximum(np.asarray(mean, dtype=float), 1e-12)
    out = np.ones(np.broadcast(n, mu).shape, dtype=float)
    n, mu = np.broadcast_arrays(n, mu)
    sel = n > 0
    if sel.any():
        x = np.floor(n[sel] - 1)  # P(X > x), as the distributions' sf(n - 1) reads it
        if overdispersion <= 0:
            out[sel] = special.pdtrc(x, mu[sel])
        else:
            size = 1.0 / overdispersion
            # NB(size, p) with p = size / (size + mu): P(X > x) = I_{1-p}(x + 1, size).
            out[sel] = special.betainc(x + 1, size, mu[sel] / (size + mu[sel]))
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True, slots=True)
class Prior:
    """Empirical-Bayes prior of one kind of key (companies, or topics), from the population's baselines."""

    share: float  # pooled negative share of the population
    strength: float  # Beta prior strength in pseudo-documents (method of moments across keys)
    rate: float  # typical (median) novel documents per baseline hour of a key of this kind
    keys: int  # keys with baseline volume the estimate came from


def population_prior(neg: np.ndarray, tot: np.ndarray, hours: int, fallback_share: float, p: Params) -> Prior:
    """The Beta prior of the keys' negative shares and a typical volume, by the method of moments.

    The spread of the keys' own shares beyond binomial noise says how much a key's share
    is its own: a population whose keys all sit near the pooled share gets a strong prior
    (a sparse key is trusted little), a varied one a weak prior. Keys with fewer than 20
    documents are too noisy to take part; with fewer than five such keys the configured
    `prior_strength` is used.
    """
    neg = np.asarray(neg, dtype=float)
    tot = np.asarray(tot, dtype=float)
    has = tot > 0
    if not has.any():
        return Prior(fallback_share, p.prior_strength, 0.0, 0)
    mean = float(neg[has].sum() / tot[has].sum())
    mean = min(max(mean, 1e-4), 1 - 1e-4)
    rate = float(np.median(tot[has])) / max(1, hours)
    big = tot >= 20
    strength = p.prior_strength
    if big.sum() >= 5:
        x = neg[big] / tot[big]
        w = tot[big] / tot[big].sum()
        var = float((w * (x - mean) ** 2).sum())
        noise = float((w * mean * (1 - mean) / tot[big]).sum())
        between = var - noise
        strength = p.max_concentration if between <= 0 else mean * (1 - mean) / between - 1.0
        strength = float(min(max(strength, 2.0), p.max_concentration))
    return Prior(mean, strength, rate, int(has.sum()))
