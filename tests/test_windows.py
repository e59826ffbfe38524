"""Rolling windows, minute arithmetic, in-memory counts and clocks, against plain numpy/python."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detect.clock import WatermarkClock, tick_times
from monitor.detect.windows import floor_minute, from_minute, rolling_sums, to_minute
from tests.doubles import MinuteCounts

T0 = datetime(2024, 5, 6, 14, 0, tzinfo=UTC)


def test_minute_roundtrip_and_floor() -> None:
    t = T0 + timedelta(seconds=95.5)
    assert from_minute(to_minute(t)) == T0 + timedelta(minutes=1) == floor_minute(t)
    with pytest.raises(ValueError):
        to_minute(datetime(2024, 1, 1))


@given(
    st.integers(1, 5),
    st.integers(1, 30),
    st.integers(1, 10),
    st.integers(0, 20),
    st.integers(0, 2**31),
)
@settings(max_examples=60, deadline=None)
def test_rolling_sums_match_naive(keys: int, width: int, positions: int, extra: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = width + positions - 1 + extra
    dense = rng.integers(0, 5, size=(keys, t))
    got = rolling_sums(dense, width, positions)
    for j in range(positions):
        end = t - positions + 1 + j
        np.testing.assert_array_equal(got[:, j], dense[:, end - width : end].sum(axis=1))


def test_rolling_sums_needs_enough_columns() -> None:
    with pytest.raises(ValueError):
        rolling_sums(np.zeros((1, 5)), 5, 2)


def test_minute_counts_fetch_matches_reference() -> None:
    rng = np.random.default_rng(3)
    mc = MinuteCounts()
    for _ in range(2000):
        mc.add(
            str(rng.choice(["topic", "entity"])),
            f"k{rng.integers(6)}",
            int(rng.integers(0, 400)),
            2,
            2,
            int(rng.integers(0, 3)),
        )
    mc.add("entity", "ZERO", 5, 0, 0, 0)  # zero-volume rows are left out
    for start, end, per in [(0, 400, 1), (60, 300, 60), (0, 400, 60), (500, 600, 1)]:
        ref: dict = {}
        for (k0, k1, m), (tot, nt, nn, neg) in mc.cells().items():
            if start <= m < end and tot > 0:
                a = ref.setdefault(((k0, k1), m // per), [0, 0, 0, 0])
                a[0] += nt
                a[1] += nn
                a[2] += tot
                a[3] += neg
        r = mc.fetch(start, end, per)
        got = {
            (r.keys[r.key_idx[i]], int(r.bucket[i])): [
                int(r.novel_total[i]),
                int(r.novel_negative[i]),
                int(r.total[i]),
                int(r.negative[i]),
            ]
            for i in range(len(r.bucket))
        }
        assert got == ref


def test_watermark_clock() -> None:
    c = WatermarkClock(timedelta(minutes=2))
    assert c.now() is None
    c.observe(T0 + timedelta(minutes=10))
    c.observe(T0)  # late: does not move the watermark back
    assert c.now() == T0 + timedelta(minutes=8)
    c.finish()
    assert c.now() == T0 + timedelta(minutes=10)


def test_tick_times_are_aligned() -> None:
    a = T0 + timedelta(seconds=10)
    b = T0 + timedelta(seconds=125)
    assert tick_times(a, b, 30) == [T0 + timedelta(seconds=s) for s in (30, 60, 90, 120)]
    assert tick_times(None, b, 60) == [T0 + timedelta(seconds=120)]
    assert tick_times(b, b, 30) == []
    # Any split of the interval gives the same instants.
    mid = T0 + timedelta(seconds=77)
    assert tick_times(a, mid, 30) + tick_times(mid, b, 30) == tick_times(a, b, 30)
