"""Negative-surge statistics per key at several horizons. Pure numpy/scipy.

The question asked of a key (topic or company) at a tick: *has opinion about it turned
negative, beyond what is normal for it?* Real company streams are sparse and bursty: a
company with two items a day has a bad day of twenty, a third of them negative, spread
over the trading day. So each key is tested at several horizons (15 minutes to a day),
and two kinds of evidence are weighed.

Evidence in a window
    *Stories* are novel documents; *copies* are near-duplicates and retweets of them
    (how opinion spreads). Negative stories count in full; copies of negative documents
    add ``copy_weight`` each, capped at ``copy_cap`` times the negative stories (a storm
    of one story cannot stand in for many). Copies of neutral or positive posts add
    nothing, so a retweet storm of a cashtag list never fires.

Baseline (`monitor.detect.baseline`)
    The key's negative share over the trailing ``baseline_days`` (surge hours left out),
    shrunk toward its population (companies toward companies, topics toward topics) with
    an empirical-Bayes prior whose strength comes from how much the keys' shares differ.
    The key's volume is its share of the feed's stories over the baseline, shrunk toward
    the population's typical volume by ``rate_prior_hours``.

Tests, per horizon
    * share: beta-binomial P(X >= k) of the negatives among the window's documents;
    * count: the negatives against the count the key's usual volume and share predict,
      its volume taken as its usual share of the feed's stories in the same window (so
      nights, weekends and outages need no model of their own); negative binomial, so
      bursty real counts are not a surprise. The classic bad day, ten times the usual
      volume at a share well above normal, is a count far above its expectation even
      when the share alone is not conclusive. Volume alone never fires: the share gates
      below still apply.

    A key fires at a horizon when the smaller p is under that horizon's level
    (`Params.alpha_for`: the false-alarm budget per key per 30 days shared over horizons
    and tests), and the effect matters: negatives >= max(``min_negative``,
    ``min_negative_ratio`` x the negatives the key usually has in that window), share >=
    ``min_lift`` x baseline and >= baseline + ``min_share_delta`` (for a key normally
    above ~45% negative the lift asked for is capped halfway to 100%). It must also be
    warm (``warmup_minutes`` of history) and *fresh*: a story or copy arrived in the last
    ``fresh_minutes``. An alert opens when evidence arrives, never because calmer
    documents aged out of a window, which also lets a replay evaluate only keys with new
    data without changing any alert.

Hysteresis
    A key is calm when no horizon's window, stretched by ``resolve_minutes``, is still
    elevated: at least half of ``min_negative`` negatives, a share at least halfway
    between the baseline and the firing share, and one of the two firing tests (share, or
    negatives against the usual count) still at p <= 0.01. In between an alert keeps its
    state. (Without the last condition a busy company whose share sits a little above its
    norm for weeks would hold one alert open for weeks. Asking the share test alone made
    an alert that fired on volume resolve a minute later and fire again with the next
    story: on the StockNet dev stream 45 of 159 company alerts re-fired within an hour.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from monitor.detect.baseline import (
    Prior,
    baseline,
    beta_binomial_sf,
    lift_share,
    nb_sf,
)
from monitor.detect.params import Params
from monitor.detect.signals import Key, Signal
from monitor.detect.windows import from_minute
from monitor.store.keys import RowKey

CRITICAL_LIFT = 3.0  # a firing key at this lift or more is marked severity "critical"
RESOLVE_ALPHA = 0.01  # a window stays "elevated" (not calm) while its share test is still this strong
FIELDS = ("novel_total", "novel_negative", "total", "negative")  # columns of Evidence.sums


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything one tick's test needs for the keys it evaluates, keys aligned on axis 0.

    `sums[w]` is (keys, 4): `FIELDS` summed over the window of `w` minutes ending at
    `end`, for every width in `Params.widths`; `feed[w]` the same for the whole feed.
    `block_*` are the baseline hours (novel documents) per key; `feed_base_total` the
    feed's novel documents over the same hours; `priors` the population prior per key
    kind; `history` the minutes since each key was first seen.
    """

    keys: Sequence[RowKey]
    end: int
    sums: Mapping[int, np.ndarray]
    feed: Mapping[int, np.ndarray]
    block_tot: np.ndarray
    block_neg: np.ndarray
    feed_base_total: float
    priors: Mapping[str, Prior]
    history: np.ndarray
    base: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # `key_baselines`, if the caller cached it


@dataclass(frozen=True, slots=True)
class Verdicts:
    """Per-key results of one tick (arrays aligned with `keys`)."""

    keys: Sequence[RowKey]
    end: int
    spiking: np.ndarray
    calm: np.ndarray
    fresh: np.ndarray
    window: np.ndarray  # the horizon that speaks for the key
    k: np.ndarray  # negative evidence (stories + capped copy evidence)
    n: np.ndarray  # documents the share is taken over (stories + copy evidence)
    stories: np.ndarray
    copies: np.ndarray
    negative_stories: np.ndarray
    negative_copies: np.ndarray
    expected: np.ndarray  # stories the key's usual share of the feed predicts
    share: np.ndarray
    base_neg: np.ndarray
    base_tot: np.ndarray
    base_share: np.ndarray
    shrunk: np.ndarray
    population_share: np.ndarray
    prior_strength: np.ndarray
    lift: np.ndarray
    pvalue: np.ndarray
    p_share: np.ndarray
    p_count: np.ndarray
    level: np.ndarray  # the chosen horizon's per-test level
    min_k: np.ndarray
    fire_share: np.ndarray
    resolve_share: np.ndarray
    history: np.ndarray
    warm: np.ndarray
    excluded_hours: np.ndarray
    reason: list[str]
    budget: float


def copy_evidence(neg_stories: np.ndarray, neg_copies: np.ndarray, p: Params) -> np.ndarray:
    """Whole documents of evidence the copies of negative documents add (weighted, capped)."""
    return np.floor(np.minimum(p.copy_weight * neg_copies, p.copy_cap * neg_stories) + 1e-9)


def _counts(s: np.ndarray, p: Params) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(negative evidence, documents, stories, negative stories) from sums with `FIELDS` last."""
    nt, nn, tn = s[..., 0].astype(float), s[..., 1].astype(float), s[..., 3].astype(float)
    extra = copy_evidence(nn, np.maximum(tn - nn, 0), p)
    return nn + extra, nt + extra, nt, nn


def _prior(priors: Mapping[str, Prior], kind: str, p: Params) -> Prior:
    return priors.get(kind) or Prior(0.25, p.prior_strength, 0.0, 0)


def key_baselines(
    keys: Sequence[RowKey], block_neg: np.ndarray, block_tot: np.ndarray, priors: Mapping[str, Prior], p: Params
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(baseline negatives, baseline total, excluded surge hours) per key; surge hours are
    judged against the key's own population."""
    kk = len(keys)
    kinds = np.asarray([k[0] for k in keys])
    base_neg = np.zeros(kk, dtype=np.int64)
    base_tot = np.zeros(kk, dtype=np.int64)
    excluded = np.zeros(kk, dtype=np.int64)
    for kind in sorted(set(kinds.tolist())):
        sel = kinds == kind
        n_, t_, x_ = baseline(block_neg[sel], block_tot[sel], _prior(priors, kind, p).share, p)
        base_neg[sel], base_tot[sel], excluded[sel] = n_, t_, x_
    return base_neg, base_tot, excluded


def evaluate(ev: Evidence, p: Params) -> Verdicts:
    kk = len(ev.keys)
    kinds = [k[0] for k in ev.keys]
    pri = [_prior(ev.priors, kind, p) for kind in kinds]
    pop_share = np.asarray([x.share for x in pri], dtype=float)
    strength = np.asarray([x.strength for x in pri], dtype=float)
    pop_rate = np.asarray([x.rate for x in pri], dtype=float)
    nb = ev.block_tot.shape[1] if ev.block_tot.ndim == 2 else 0
    base_neg, base_tot, excluded = ev.base or key_baselines(ev.keys, ev.block_neg, ev.block_tot, ev.priors, p)
    denom = strength + base_tot
    shrunk = np.where(denom > 0, (strength * pop_share + base_neg) / np.maximum(denom, 1e-12), pop_share)
    with np.errstate(invalid="ignore", divide="ignore"):
        base_share = np.where(base_tot > 0, base_neg / np.maximum(base_tot, 1), np.nan)
    conc = np.maximum(np.minimum(strength + base_tot, p.max_concentration), 2.0)
    fire_share = np.maximum(lift_share(shrunk, p.min_lift), shrunk + p.min_share_delta)
    resolve_share = shrunk + 0.5 * (fire_share - shrunk)

    # The key's share of the feed's stories: its own baseline volume shrunk toward the
    # population's typical volume by `rate_prior_hours` of it.
    hours = max(nb, 1)
    own_rate = (base_tot + p.rate_prior_hours * pop_rate) / (hours + p.rate_prior_hours)
    feed_rate = ev.feed_base_total / hours
    pi = np.clip(own_rate / feed_rate, 0.0, 0.95) if feed_rate > 0 else np.full(kk, np.nan)

    warm = ev.history >= p.warmup_minutes
    fresh = ev.sums[p.fresh_minutes][:, 2] > 0 if kk else np.zeros(0, dtype=bool)

    nw = len(p.windows)
    wins = np.asarray(p.windows)
    S = np.stack([ev.sums[w] for w in p.windows], axis=1).astype(float).reshape(kk, nw, 4)
    U = np.stack([ev.sums[w + p.positions - 1] for w in p.windows], axis=1).astype(float).reshape(kk, nw, 4)
    K, N, STO, NEGS = _counts(S, p)
    CPY = S[..., 2] - S[..., 0]
    NEGC = np.maximum(S[..., 3] - S[..., 1], 0)
    feed_n = np.asarray([float(ev.feed[w][0]) if w in ev.feed else 0.0 for w in p.windows])
    odds = (pi / np.maximum(1.0 - pi, 0.05))[:, None]
    EXP = odds * np.maximum(feed_n[None, :] - STO, 0.0)
    KMIN = np.maximum(p.min_negative, np.ceil(p.min_negative_ratio * shrunk[:, None] * np.nan_to_num(EXP)))
    with np.errstate(invalid="ignore", divide="ignore"):
        SH = np.where(N > 0, K / np.maximum(N, 1), np.nan)
    LVL = np.broadcast_to(np.asarray([p.alpha_for(int(w)) for w in wins]), (kk, nw))
    gates = np.zeros((5, kk, nw), dtype=bool)  # tested, enough negatives, significant, lift, delta
    gates[0] = warm[:, None] & (N > 0)
    gates[1] = K >= KMIN
    with np.errstate(invalid="ignore"):
        gates[3] = lift_share(shrunk, p.min_lift)[:, None] <= SH
        gates[4] = (SH - shrunk[:, None]) >= p.min_share_delta
    PS, PV, P = (np.full((kk, nw), np.nan) for _ in range(3))
    ku, nu, stu, _ = _counts(U, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        su = ku / np.maximum(nu, 1)
    elevated = (nu > 0) & (ku >= p.resolve_negative) & (su >= resolve_share[:, None])
    if elevated.any():  # still elevated only while one of the firing tests is still clearly strong
        r, c = np.nonzero(elevated)
        still = beta_binomial_sf(ku[r, c], nu[r, c], shrunk[r], conc[r]) <= RESOLVE_ALPHA
        feed_u = np.asarray(
            [float(ev.feed[w + p.positions - 1][0]) if w + p.positions - 1 in ev.feed else 0.0 for w in p.windows]
        )
        exp_u = odds[r, 0] * np.maximum(feed_u[c] - stu[r, c], 0.0)
        finite = np.isfinite(exp_u) & ~still
        if finite.any():  # the negatives against the usual count, as the firing test reads them
            idx = np.nonzero(finite)[0]
            still[idx] = nb_sf(ku[r, c][idx], shrunk[r][idx] * exp_u[idx], p.overdispersion) <= RESOLVE_ALPHA
        elevated[r, c] = still
    calm = ~elevated.any(axis=1)
    # p-values only where every other gate holds (scipy per call is what a tick costs).
    cand = gates[0] & gates[1] & gates[3] & gates[4] & fresh[:, None]
    if cand.any():
        r, c = np.nonzero(cand)
        kc, nc, sc, ec = K[r, c], N[r, c], shrunk[r], EXP[r, c]
        ps = beta_binomial_sf(kc, nc, sc, conc[r])
        pv = np.ones_like(ps)
        finite = np.isfinite(ec)
        if finite.any():  # the negatives against the count the key's usual volume and share predict
            pv[finite] = nb_sf(kc[finite], sc[finite] * ec[finite], p.overdispersion)
        pmin = np.minimum(ps, pv)
        PS[r, c], PV[r, c], P[r, c] = ps, pv, pmin
        gates[2, r, c] = pmin <= LVL[r, c]
    fire = cand & gates[2]
    spiking = fire.any(axis=1)
    calm &= ~spiking

    # The horizon that speaks for the key: the most significant firing one (relative to
    # its level), else the most significant tested one, else the shortest.
    rel = P / LVL
    near = 1e12 + np.nan_to_num(fire_share[:, None] - SH, nan=1e6)  # closest to the firing share
    score = np.where(fire, rel, np.where(np.isfinite(rel), 1e6 + rel, np.where(gates[0], near, np.inf)))
    choice = np.argmin(score, axis=1) if kk else np.zeros(0, dtype=np.int64)
    rows = np.arange(kk)

    def pick(a: np.ndarray) -> np.ndarray:
        return a[rows, choice]

    k_c, n_c = pick(K), pick(N)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_c = np.where(n_c > 0, k_c / np.maximum(n_c, 1), np.nan)
        lift = np.where(n_c > 0, s_c / np.maximum(shrunk, 1e-12), np.nan)
    g = gates[:, rows, choice]
    reasons: list[str] = []
    for i in range(kk):
        if spiking[i]:
            reasons.append("spiking")
        elif not warm[i]:
            reasons.append("warming_up")
        elif not g[0, i]:
            reasons.append("no_volume")
        elif not g[1, i]:
            reasons.append("too_few_negative")
        elif not g[3, i]:
            reasons.append("lift_too_small")
        elif not g[4, i]:
            reasons.append("share_delta_too_small")
        elif not fresh[i]:
            reasons.append("no_new_evidence")
        elif not g[2, i]:
            reasons.append("not_significant")
        else:
            reasons.append("not_spiking")
    return Verdicts(
        keys=ev.keys,
        end=ev.end,
        spiking=spiking,
        calm=calm,
        fresh=fresh,
        window=np.asarray(p.windows)[choice] if kk else np.zeros(0, dtype=np.int64),
        k=k_c,
        n=n_c,
        stories=pick(STO),
        copies=pick(CPY),
        negative_stories=pick(NEGS),
        negative_copies=pick(NEGC),
        expected=pick(EXP),
        share=s_c,
        base_neg=base_neg,
        base_tot=base_tot,
        base_share=base_share,
        shrunk=shrunk,
        population_share=pop_share,
        prior_strength=strength,
        lift=lift,
        pvalue=pick(P),
        p_share=pick(PS),
        p_count=pick(PV),
        level=pick(LVL),
        min_k=pick(KMIN),
        fire_share=fire_share,
        resolve_share=resolve_share,
        history=ev.history,
        warm=warm,
        excluded_hours=excluded,
        reason=reasons,
        budget=p.budget,
    )


_G = {4: "%.4g", 6: "%.6g"}


def _f(x: float | None, digits: int = 6) -> float | None:
    return None if x is None or not math.isfinite(x) else float(_G[digits] % x)


def _int(x: float) -> int | None:
    return None if not math.isfinite(x) else round(x)


def to_signals(v: Verdicts, at: datetime, only: np.ndarray | None = None) -> list[Signal]:
    """One Signal per topic/entity key (those where `only` is true, if given); `numbers`
    holds every figure the decision used."""
    out: list[Signal] = []
    if only is not None:
        if not only.any():
            return out
        sel = np.nonzero(only)[0]
        v = Verdicts(
            **{
                f: (getattr(v, f)[sel] if isinstance(getattr(v, f), np.ndarray) else getattr(v, f))
                for f in Verdicts.__dataclass_fields__
                if f not in ("keys", "reason")
            },
            keys=[v.keys[i] for i in sel.tolist()],
            reason=[v.reason[i] for i in sel.tolist()],
        )
    cols = {
        name: np.asarray(getattr(v, name), dtype=float).tolist()
        for name in (
            "window", "k", "n", "stories", "copies", "negative_stories", "negative_copies", "expected", "share",
            "base_neg", "base_tot", "base_share", "shrunk", "population_share", "prior_strength", "lift", "pvalue",
            "p_share", "p_count", "level", "min_k", "fire_share", "resolve_share", "history", "excluded_hours",
        )
    }  # fmt: skip
    flags = {name: np.asarray(getattr(v, name)).astype(bool).tolist() for name in ("spiking", "calm", "warm", "fresh")}
    for i, (kind, value) in enumerate(v.keys):
        if kind not in ("topic", "entity"):
            continue
        c = {name: col[i] for name, col in cols.items()}
        w = int(c["window"])
        stories, n = c["stories"], c["n"]
        share, shrunk = c["share"], c["shrunk"]
        expected = c["expected"]
        numbers = {
            "window_minutes": w,
            "window_negative": _int(c["k"]),
            "window_total": _int(n),
            "stories": _int(stories),
            "copies": _int(c["copies"]),
            "negative_stories": _int(c["negative_stories"]),
            "negative_copies": _int(c["negative_copies"]),
            "expected_stories": _f(expected, 4),
            "expected_negative": _f(expected * shrunk, 4) if math.isfinite(expected) else None,
            "volume_ratio": _f(stories / expected, 4) if math.isfinite(expected) and expected > 0 else None,
            "share": _f(share),
            "baseline_negative": _int(c["base_neg"]),
            "baseline_total": _int(c["base_tot"]),
            "baseline_share": _f(c["base_share"]),
            "shrunk_baseline": _f(shrunk),
            "population_share": _f(c["population_share"]),
            "prior_strength": _f(c["prior_strength"], 4),
            "lift": _f(c["lift"], 4),
            "share_delta": _f(share - shrunk) if n > 0 else None,
            "p_value": _f(c["pvalue"]),
            "p_share": _f(c["p_share"]) if math.isfinite(c["pvalue"]) else None,
            "p_count": _f(c["p_count"]) if math.isfinite(c["pvalue"]) else None,
            "alpha": _f(c["level"]),
            "false_alarm_budget": v.budget,
            "min_negative": _int(c["min_k"]),
            "fire_share": _f(c["fire_share"]),
            "resolve_share": _f(c["resolve_share"]),
            "history_minutes": _int(c["history"]),
            "warm": flags["warm"][i],
            "fresh": flags["fresh"][i],
            "excluded_baseline_hours": _int(c["excluded_hours"]),
            "reason": v.reason[i],
        }
        spiking = flags["spiking"][i]
        lift = c["lift"] if math.isfinite(c["lift"]) else 0.0
        out.append(
            Signal(
                key=Key(kind, value),  # type: ignore[arg-type]
                at=at,
                window_start=from_minute(v.end - w),
                spiking=spiking,
                calm=flags["calm"][i],
                numbers=numbers,
                severity="critical" if spiking and lift >= CRITICAL_LIFT else "warning",
            )
        )
    return out
