"""Spike statistics against scipy/numpy references, decision gates, hysteresis, and a
cheap false-alert simulation on counts (many key-days, no database)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy import stats

from monitor.detect.baseline import baseline, beta_binomial_sf, shrink, surge_mask
from monitor.detect.params import Params, span_bounds
from monitor.detect.spike import Evidence, evaluate, to_signals
from monitor.detect.windows import from_minute

P = Params()
B = P.baseline_hours
S = P.span_minutes


def make_ev(block_tot, block_neg, recent_tot, recent_neg, *, parent_share=0.2, live=60, seen=True, end=10_000_000):
    bt = np.atleast_2d(np.asarray(block_tot, dtype=np.int64))
    k = bt.shape[0]
    rt = np.atleast_2d(np.asarray(recent_tot, dtype=np.int64))
    return Evidence(
        keys=[("entity", f"K{i}") for i in range(k)],
        end=end,
        block_tot=bt,
        block_neg=np.atleast_2d(np.asarray(block_neg, dtype=np.int64)),
        recent_tot=rt,
        recent_neg=np.atleast_2d(np.asarray(recent_neg, dtype=np.int64)),
        parent_block_tot=np.full(bt.shape[1], 10_000),
        parent_block_neg=np.full(bt.shape[1], int(10_000 * parent_share)),
        parent_block_live=np.full(bt.shape[1], live),
        parent_recent_live=np.ones(rt.shape[1], dtype=np.int64),
        seen_before=np.full(k, seen),
    )


def quiet_blocks(per_hour=20, share=0.2):
    tot = np.full(B, per_hour)
    return tot, np.round(tot * share).astype(int)


def recent_with(window_neg, window_tot, width=15, base_per_min=0):
    tot = np.full(S, base_per_min)
    neg = np.zeros(S, dtype=int)
    tot[-width:] += np.bincount(np.arange(window_tot) % width, minlength=width)
    neg[-width:] += np.bincount(np.arange(window_neg) % width, minlength=width)
    return tot, neg


def test_shrink_is_posterior_mean() -> None:
    got = shrink(np.array([0, 5, 500]), np.array([0, 10, 1000]), 0.2, 50)
    np.testing.assert_allclose(got, [0.2, (10 + 5) / 60, (10 + 500) / 1050])


@pytest.mark.parametrize(
    ("k", "n", "m", "c"), [(8, 20, 0.2, 50), (1, 1, 0.3, 10), (30, 100, 0.1, 400), (0, 5, 0.2, 50)]
)
def test_beta_binomial_sf_matches_scipy(k, n, m, c) -> None:
    want = stats.betabinom.sf(k - 1, n, c * m, c * (1 - m)) if k > 0 else 1.0
    np.testing.assert_allclose(beta_binomial_sf(np.array([k]), np.array([n]), m, c), [want], rtol=1e-9)


def test_beta_binomial_tends_to_binomial() -> None:
    got = beta_binomial_sf(np.array([15]), np.array([40]), 0.2, 1e7)
    np.testing.assert_allclose(got, [stats.binomtest(15, 40, 0.2, alternative="greater").pvalue], rtol=1e-3)


def test_zero_volume_blocks_do_not_dilute_baseline() -> None:
    tot, neg = quiet_blocks()
    gappy_tot, gappy_neg = tot.copy(), neg.copy()
    gappy_tot[50:120] = 0
    gappy_neg[50:120] = 0
    n1, t1, _ = baseline(neg[None], tot[None], 0.2, P)
    n2, t2, _ = baseline(gappy_neg[None], gappy_tot[None], 0.2, P)
    assert n1[0] / t1[0] == pytest.approx(n2[0] / t2[0])


def test_surge_hours_are_left_out_of_baseline() -> None:
    tot, neg = quiet_blocks(40, 0.2)
    neg = neg.copy()
    neg[100] = 35  # yesterday's scandal hour
    m = surge_mask(neg[None], tot[None], np.array([0.2]), P)
    assert m[0, 100] and m.sum() == 1
    bn, bt, excl = baseline(neg[None], tot[None], 0.2, P)
    assert excl[0] == 1 and bn[0] / bt[0] == pytest.approx(0.2)


def _one(ev, **kw):
    v = evaluate(ev, P, **kw)
    return v, to_signals(v, from_minute(ev.end))[0]


def test_clear_surge_fires_with_all_numbers() -> None:
    bt, bn = quiet_blocks()
    rt, rn = recent_with(14, 20, base_per_min=0)
    v, sig = _one(make_ev(bt, bn, rt, rn))
    assert sig.spiking and not sig.calm
    num = sig.numbers
    for name in ("window_negative", "window_total", "baseline_share", "shrunk_baseline", "share", "lift", "p_value",
                 "corrected_alpha", "keys_tested", "tests", "window_minutes"):  # fmt: skip
        assert num[name] is not None, name
    # The p-value is the beta-binomial tail at the shrunk baseline (capped concentration).
    shr = (50 * 0.2 + bn.sum()) / (50 + bt.sum())
    c = min(50 + bt.sum(), P.max_concentration)
    want = stats.betabinom.sf(13, 20, c * shr, c * (1 - shr))
    assert num["p_value"] == pytest.approx(want, rel=1e-4)
    assert num["corrected_alpha"] == pytest.approx(P.alpha / num["tests"])


@pytest.mark.parametrize(
    ("neg", "tot", "why"),
    [
        (6, 8, "too_few_negative"),  # below min_negative even though the share is high
        (9, 36, "lift_too_small"),  # 25% vs 20%: significant-ish but too small an effect
    ],
)
def test_gates(neg, tot, why) -> None:
    bt, bn = quiet_blocks(200)
    rt, rn = recent_with(neg, tot)
    v, sig = _one(make_ev(bt, bn, rt, rn))
    assert not sig.spiking
    assert sig.numbers["reason"] in (why, "not_significant")


def test_busy_day_at_usual_share_does_not_fire() -> None:
    bt, bn = quiet_blocks(60)
    rt, rn = recent_with(60, 300)  # five times the volume, same 20% share
    _, sig = _one(make_ev(bt, bn, rt, rn))
    assert not sig.spiking


def test_warmup_blocks_firing() -> None:
    bt, bn = np.zeros(B, dtype=int), np.zeros(B, dtype=int)
    rt, rn = recent_with(14, 20)
    ev = make_ev(bt, bn, rt, rn, seen=False)
    v, sig = _one(ev)
    assert not sig.spiking and sig.numbers["reason"] == "warming_up"


def test_bonferroni_count_matters() -> None:
    bt, bn = quiet_blocks(30)
    rt, rn = recent_with(12, 20)
    ev = make_ev(bt, bn, rt, rn)
    v1 = evaluate(ev, P, n_tests=1)
    v2 = evaluate(ev, P, n_tests=10**7)
    assert v1.spiking[0] and not v2.spiking[0]


def test_hysteresis_calm_needs_resolve_minutes_below() -> None:
    p15 = Params(windows=(15,))
    s15 = p15.span_minutes + 60
    bt, bn = quiet_blocks()

    def verdict(last_negative_minute: int):
        rt = np.zeros(s15, dtype=int)
        rn = np.zeros(s15, dtype=int)
        rt[s15 - last_negative_minute - 20 : s15 - last_negative_minute] = 1
        rn[s15 - last_negative_minute - 20 : s15 - last_negative_minute] = 1
        v = evaluate(make_ev(bt, bn, rt, rn), p15)
        return bool(v.spiking[0]), bool(v.calm[0])

    assert verdict(0) == (True, False)
    # Stopped 5 minutes ago: window still holds 10 negatives -> still spiking.
    assert verdict(5)[0]
    # Stopped 20 minutes ago: window empty now, but not yet for resolve_minutes: neither.
    assert verdict(20) == (False, False)
    # Long enough below the resolve level: calm.
    assert verdict(15 + p15.resolve_minutes + 5) == (False, True)


def test_span_bounds_keep_baseline_before_windows() -> None:
    end = 29_000_000
    h0, h1, m0 = span_bounds(end, P)
    assert h1 * 60 <= end - S and h1 - h0 == B and m0 == h1 * 60


# --- false alerts on quiet traffic --------------------------------------------------------


def _diurnal(minutes: np.ndarray) -> np.ndarray:
    h = (minutes % 1440) / 60
    day = np.where((h >= 9) & (h <= 23), 0.15 + 0.85 * np.clip(np.sin(np.pi * (h - 9) / 14), 0, None) ** 1.5, 0.15)
    return np.where(((minutes // 1440) + 3) % 7 >= 5, day * 0.35, day)


def simulate_false_alerts(
    rate: float, share: float, days: int, seed: int, tick_every: int = 2, n_tests: int = 60
) -> int:
    """Fire events of one quiet key over `days` (after a 7-day baseline), ticks every `tick_every` minutes.

    Volume follows the day; the true negative share drifts hour to hour (Beta with
    concentration 300) as it does in real streams. Each tick is a row of one Evidence,
    so one `evaluate` call scores thousands of ticks.
    """
    rng = np.random.default_rng(seed)
    total_min = (7 + days) * 1440 + 60
    minutes = np.arange(total_min)
    n = rng.poisson(rate * _diurnal(minutes))
    hour_share = rng.beta(share * 300, (1 - share) * 300, size=total_min // 60 + 1)
    k = rng.binomial(n, hour_share[minutes // 60])
    hours = total_min // 60
    ht = n[: hours * 60].reshape(hours, 60).sum(axis=1)
    hn = k[: hours * 60].reshape(hours, 60).sum(axis=1)
    ends = np.arange(7 * 1440 + 300, total_min, tick_every)
    fires, firing = 0, False
    for chunk in np.array_split(ends, max(1, len(ends) // 4000)):
        h1 = (chunk - S) // 60
        bt = sliding_window_view(ht, B)[h1 - B]
        bn = sliding_window_view(hn, B)[h1 - B]
        rt = sliding_window_view(n, S)[chunk - S]
        rn = sliding_window_view(k, S)[chunk - S]
        ev = make_ev(bt, bn, rt, rn, parent_share=share)
        v = evaluate(ev, P, n_tests=n_tests)
        for sp, calm in zip(v.spiking.tolist(), v.calm.tolist(), strict=True):
            if sp and not firing:
                fires += 1
                firing = True
            elif calm:
                firing = False
    return fires


QUIET_KEYS = [  # (peak docs/minute, negative share)
    (3.0, 0.20),
    (0.6, 0.25),
    (0.1, 0.20),
    (0.02, 0.30),
    (1.0, 0.45),
]


def test_quiet_traffic_false_alerts_per_key_per_30_days() -> None:
    fires = [simulate_false_alerts(rate, share, 30, seed=i) for i, (rate, share) in enumerate(QUIET_KEYS)]
    assert max(fires) <= 1, fires


@pytest.mark.slow
def test_quiet_traffic_false_alerts_many_key_days() -> None:
    fires = [simulate_false_alerts(rate, share, 30, seed=100 + i) for i in range(4) for rate, share in QUIET_KEYS]
    per_key_30d = sum(fires) / len(fires)
    assert per_key_30d <= 1.0, fires
    assert math.isfinite(per_key_30d)


def test_key_with_high_baseline_can_still_fire() -> None:
    # Normally 60% negative: a lift of 1.8 is impossible, so the bar is halfway to 100%.
    bt, bn = quiet_blocks(40, 0.6)
    rt, rn = recent_with(58, 60)
    v, sig = _one(make_ev(bt, bn, rt, rn, parent_share=0.6))
    assert sig.spiking, sig.numbers
    assert sig.numbers["fire_share"] == pytest.approx((1 + sig.numbers["shrunk_baseline"]) / 2, abs=1e-5)
